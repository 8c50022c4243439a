"""URI templates: the RFC 6570 subset ``{name}`` and ``{+name}``, and nothing else."""

from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statemachines import StatepollError, Template, TemplateError
from statemachines.template import Variable, body_strings, whole_variable


class TestParse:
    """Template.parse splits a template once into literals and variables."""

    def test_parts_alternate_literals_and_variables(self) -> None:
        """'/a/{x}/b/{+y}' is a literal, {x}, a literal and {+y}."""
        template = Template.parse("/a/{x}/b/{+y}")

        parts = template.parts

        assert parts == ("/a/", Variable("x"), "/b/", Variable("y", reserved=True))
        assert template.source == "/a/{x}/b/{+y}"

    def test_variables_are_named_once_in_order(self) -> None:
        """A variable used twice is listed once, where it first appears."""
        template = Template.parse("{b}/{a}/{b}")

        names = template.variables

        assert names == ("b", "a")

    def test_literal_only_template_has_no_variables(self) -> None:
        """Text without braces is one literal part and expands to itself."""
        template = Template.parse("/v3/mobile/send")

        expanded = template.expand({})

        assert (template.variables, template.parts) == ((), ("/v3/mobile/send",))
        assert expanded == "/v3/mobile/send"

    def test_empty_template_expands_to_nothing(self) -> None:
        """The empty text is a template with no parts."""
        template = Template.parse("")

        expanded = template.expand({})

        assert (template.parts, expanded) == ((), "")

    def test_parsing_is_memoised(self) -> None:
        """Parsing the same text twice returns the same object (templates are immutable)."""
        first = Template.parse("/jobs/{job_id}")

        second = Template.parse("/jobs/{job_id}")

        assert first is second

    def test_templates_are_values(self) -> None:
        """Two templates of the same text compare and hash alike."""
        first = Template.parse("/x/{y}")
        second = Template(
            source="/x/{y}", variables=("y",), parts=("/x/", Variable("y"))
        )

        same = {first, second}

        assert first == second
        assert len(same) == 1

    def test_variable_renders_as_written(self) -> None:
        """str(Variable) is the expression as a template writes it."""
        rendered = [str(Variable("x")), str(Variable("x", reserved=True))]

        assert rendered == ["{x}", "{+x}"]

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("/jobs/{}", "'{}' at position 6 names no variable"),
            ("/jobs/{job_id!s:{job_id}}", "'{' at position 16 is inside another"),
            ("/{a,b}", "'{a,b}' lists several variables"),
            ("/{x*}", "the explode modifier '*' in '{x*}' is not supported"),
            ("/{x:3}", "the modifier ':' in '{x:3}' is not supported"),
            ("/{x!r}", "'{x!r}': a variable name holds letters, digits and '_' only"),
            ("/{a-b}", "'{a-b}': a variable name holds letters, digits and '_' only"),
            ("/{a.b}", "'{a.b}': a variable name holds letters, digits and '_' only"),
            ("/{+}", "'{+}' at position 1 names no variable"),
            ("/{{x}}", "'{' at position 2 is inside another expression"),
            ("/jobs/{job_id", "'{' at position 6 is never closed"),
            ("/jobs/job_id}", "'}' at position 12 closes no '{'"),
            ("/a}/{b}", "'}' at position 2 closes no '{'"),
        ],
    )
    def test_anything_outside_the_subset_is_refused(
        self, text: str, reason: str
    ) -> None:
        """Empty, nested, unbalanced, lists, modifiers and odd names raise TemplateError."""
        with pytest.raises(TemplateError) as info:
            Template.parse(text)

        assert info.value.reason.startswith(reason)
        assert info.value.template == text
        assert info.value.variable is None
        assert str(info.value).startswith(f"template {text!r}: ")

    @pytest.mark.parametrize(
        "operator", ["#", ".", "/", ";", "?", "&", "=", ",", "!", "@", "|"]
    )
    def test_operators_other_than_plus_are_refused(self, operator: str) -> None:
        """RFC 6570's other operators (and those it reserves) are not part of the subset."""
        text = f"/jobs/{{{operator}x}}"

        with pytest.raises(TemplateError) as info:
            Template.parse(text)

        assert info.value.reason == (
            f"operator {operator!r} in '{{{operator}x}}' is not supported; "
            "a spec's templates use {name} and {+name} only"
        )

    def test_error_is_a_value_error_and_a_statepoll_error(self) -> None:
        """Callers may catch TemplateError as ValueError or as StatepollError."""
        error = TemplateError("bad", template="{")

        bases = (isinstance(error, ValueError), isinstance(error, StatepollError))

        assert bases == (True, True)

    def test_a_long_template_is_quoted_as_an_excerpt(self) -> None:
        """The message quotes at most 120 characters of a huge template."""
        text = "/" + "a" * 100_000 + "}"

        with pytest.raises(TemplateError) as info:
            Template.parse(text)

        assert len(str(info.value)) < 200
        assert "…" in str(info.value)


class TestSimpleExpansion:
    """{x} percent-encodes all but unreserved characters: a value is one segment."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("abc-._~XYZ019", "abc-._~XYZ019"),
            ("a/b", "a%2Fb"),
            ("a?b#c", "a%3Fb%23c"),
            ("100%", "100%25"),
            ("a b+c", "a%20b%2Bc"),
            ("é", "%C3%A9"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("...", "..."),
        ],
    )
    def test_value_is_encoded_into_one_segment(self, value: str, expected: str) -> None:
        """Reserved characters, '%' and non-ASCII are encoded; '.' and '..' become %2E."""
        template = Template.parse("/jobs/{job_id}/result")

        path = template.expand({"job_id": value})

        assert path == f"/jobs/{expected}/result"

    def test_unencoded_expansion_substitutes_values_raw(self) -> None:
        """encode=False puts values in as they are (query values are encoded later, whole)."""
        template = Template.parse("{v}-{w}")

        text = template.expand({"v": "2024-01-01/x y", "w": ".."}, encode=False)

        assert text == "2024-01-01/x y-.."

    def test_missing_value_names_the_variable(self) -> None:
        """A variable without a value raises TemplateError naming it."""
        template = Template.parse("/jobs/{job_id}/{region}")

        with pytest.raises(TemplateError) as info:
            template.expand({"job_id": "1"})

        assert info.value.variable == "region"
        assert (
            str(info.value)
            == "template '/jobs/{job_id}/{region}': no value for {region}"
        )
        assert isinstance(info.value.__cause__, KeyError)

    @given(value=st.text())
    def test_any_value_round_trips_within_one_segment(self, value: str) -> None:
        """Whatever the value, its expansion has no '/' and decodes back to it."""
        template = Template.parse("{x}")

        segment = template.expand({"x": value})

        assert "/" not in segment
        assert segment not in {".", ".."}
        assert unquote(segment) == value


class TestReservedExpansion:
    """{+x} keeps '/', and never leaves the host or climbs out of the prefix."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("a/b/c", "a/b/c"),
            ("@c!$&'()*+,;=:", "@c!$&'()*+,;=:"),
            ("a?b#c", "a%3Fb%23c"),
            ("[::1]", "%5B::1%5D"),
            ("x y", "x%20y"),
            ("é/ü", "%C3%A9/%C3%BC"),
            ("caf%C3%A9", "caf%C3%A9"),
            ("50%", "50%25"),
            ("50%zz", "50%25zz"),
            ("%4", "%254"),
            ("2024:01/x", "2024:01/x"),
            ("a.b/..c/...", "a.b/..c/..."),
            ("", ""),
        ],
    )
    def test_value_keeps_reserved_characters(self, value: str, expected: str) -> None:
        """Reserved characters and %XX triplets pass; the rest (a lone '%' too) is encoded."""
        template = Template.parse("/files/{+path}")

        path = template.expand({"path": value})

        assert path == f"/files/{expected}"

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (".", "would make a '.' path segment"),
            ("..", "would make a '..' path segment"),
            ("a/../../admin", "would make a '..' path segment"),
            ("a/./b", "would make a '.' path segment"),
            ("x/..", "would make a '..' path segment"),
            ("%2e%2e/admin", "would make a '..' path segment"),
            ("%2E.", "would make a '..' path segment"),
            ("a%2f..%2fb", "would make a '..' path segment"),
            ("//evil.example/x", "starts with '//', which names another host"),
            ("%2F%2Fevil.example", "starts with '//', which names another host"),
            ("http://evil.example/", "starts with a scheme (http:)"),
            ("https:evil", "starts with a scheme (https:)"),
            ("svn+ssh:x", "starts with a scheme (svn+ssh:)"),
            ("a\\b", "holds a backslash, which some servers read as '/'"),
            ("..%5c..", "holds a backslash, which some servers read as '/'"),
        ],
    )
    def test_value_that_could_escape_is_refused(self, value: str, reason: str) -> None:
        """Dot segments (plain or %2e), '//', a scheme or a backslash raise TemplateError."""
        template = Template.parse("/files/{+path}")

        with pytest.raises(TemplateError) as info:
            template.expand({"path": value})

        assert info.value.variable == "path"
        assert info.value.reason.endswith(f"for {{+path}} {reason}")

    def test_refusal_holds_without_encoding(self) -> None:
        """encode=False does not switch the reserved checks off."""
        template = Template.parse("{+x}")

        with pytest.raises(TemplateError):
            template.expand({"x": "../x"}, encode=False)

    def test_unencoded_reserved_value_goes_in_raw(self) -> None:
        """A safe reserved value with encode=False is substituted as it is."""
        template = Template.parse("/{+x}")

        path = template.expand({"x": "a b/c"}, encode=False)

        assert path == "/a b/c"

    def test_refused_value_is_quoted_as_an_excerpt(self) -> None:
        """A huge refused value is quoted with at most 60 of its characters."""
        template = Template.parse("/{+x}")

        with pytest.raises(TemplateError) as info:
            template.expand({"x": "../" + "a" * 100_000})

        assert len(str(info.value)) < 200

    @given(value=st.text(alphabet="./%2eEfFcC5\\:ah"))
    def test_no_value_leaves_the_host_or_the_prefix(self, value: str) -> None:
        """Any value either is refused or resolves below the prefix, on the same host."""
        template = Template.parse("/prefix/{+x}")

        try:
            path = template.expand({"x": value})
        except TemplateError:
            return

        # Read the path as a lenient server would: %2e, %2f and %5c decoded.
        decoded = path.replace("%2e", ".").replace("%2E", ".").replace("%2f", "/")
        decoded = decoded.replace("%2F", "/").replace("%5c", "/").replace("%5C", "/")
        assert urljoin("http://h.example/", decoded).startswith(
            "http://h.example/prefix/"
        )


class TestExpansionInItsPlace:
    """A value is checked where it lands: with the template's own '/' around it."""

    @pytest.mark.parametrize(
        ("template", "value", "reason"),
        [
            ("/v1/{+name}", "/ops/2", "would make an empty path segment ('//')"),
            ("/v1/{+name}/status", "ops/2/", "would make an empty path segment ('//')"),
            ("/v1/{+name}", "ops//2", "would make an empty path segment ('//')"),
            ("/v1/{+name}", "ops%2F%2F2", "would make an empty path segment ('//')"),
            ("/v1/..{+name}", "/x", "would make a '..' path segment"),
            ("/v1/.{+name}/x", "", "would make a '.' path segment"),
            ("/jobs/{job_id}/result", "", "would make an empty path segment ('//')"),
            ("/a/.{x}/b", "", "would make a '.' path segment"),
        ],
    )
    def test_a_value_that_makes_a_bad_segment_with_its_neighbours_is_refused(
        self, template: str, value: str, reason: str
    ) -> None:
        """'//' or a dot segment made by a value and the template's text is refused."""
        parsed = Template.parse(template)
        name = parsed.variables[0]

        with pytest.raises(TemplateError) as info:
            parsed.expand({name: value})

        assert info.value.variable == name
        assert info.value.reason.endswith(f"in its place {reason}")

    @pytest.mark.parametrize(
        ("template", "value", "expected"),
        [
            ("/v1/{+name}", "projects/1/locations/x/operations/2", None),
            ("/v1{+name}", "/projects/1/operations/2", "/v1/projects/1/operations/2"),
            ("/v1/{+name}:cancel", "operations/2", "/v1/operations/2:cancel"),
            ("/v1/{+name}.json", "a/b", "/v1/a/b.json"),
            ("/a/{+x}", "", "/a/"),
        ],
    )
    def test_a_path_value_goes_in_unencoded(
        self, template: str, value: str, expected: str | None
    ) -> None:
        """A value that is a path keeps its '/' and ':' where its neighbours allow."""
        parsed = Template.parse(template)

        path = parsed.expand({parsed.variables[0]: value})

        assert path == (expected or template.replace("{+name}", value))


class TestHostileReservedValues:
    """No hostile value makes a reserved expansion leave the host or its prefix."""

    @pytest.mark.parametrize(
        "value",
        [
            "../admin",
            "%2e%2e/admin",
            "%2E%2E/admin",
            "%2e./admin",
            ".%2E/admin",
            "ops/%2e%2e/%2e%2e/admin",
            "%252e%252e/admin",
            "ops%2f..%2fadmin",
            "ops\\..\\admin",
            "ops%5c..%5cadmin",
            "ops%5C..",
            "//evil.example/x",
            "/%2fevil.example",
            "http://evil.example/x",
            "ops/2/./x",
        ],
    )
    def test_a_hostile_value_is_refused(self, value: str) -> None:
        """Dot segments in any encoding, backslashes, '//' and schemes are refused."""
        template = Template.parse("/v1/{+name}/status")

        with pytest.raises(TemplateError) as info:
            template.expand({"name": value})

        assert info.value.variable == "name"

    def test_a_value_encoded_four_times_is_kept_as_sent(self) -> None:
        """Decoding stops after three rounds: '%2525252e' is no dot to a real server."""
        template = Template.parse("/v1/{+name}/status")

        path = template.expand({"name": "%2525252e%2525252e/x"})

        assert path == "/v1/%2525252e%2525252e/x/status"

    @pytest.mark.parametrize(
        "value",
        ["user@evil.example/x", "@evil.example", "a@b:c@d", "x/a:b@evil.example:443/y"],
    )
    def test_an_at_sign_or_a_colon_stays_in_the_path(self, value: str) -> None:
        """'@' and ':' cannot name another host: the path follows the spec's host."""
        template = Template.parse("/v1/{+name}")

        url = "https://api.example.test" + template.expand({"name": value})

        parts = urlsplit(url)
        assert (parts.hostname, parts.port) == ("api.example.test", None)
        assert parts.path == f"/v1/{value}"

    @pytest.mark.parametrize("value", ["a?admin=1", "a#x", "a?b#c/../d"])
    def test_a_query_or_fragment_mark_is_encoded_into_the_path(
        self, value: str
    ) -> None:
        """'?' and '#' in a value are encoded: they cannot start a query or cut the path."""
        template = Template.parse("/v1/{+name}/status")

        try:
            url = "https://h.example" + template.expand({"name": value})
        except TemplateError:
            return  # refused for a dot segment: also safe

        parts = urlsplit(url)
        assert (parts.query, parts.fragment) == ("", "")
        assert parts.path.endswith("/status")

    @given(value=st.text(alphabet="./%2eEfFcC5\\:@?#ah"))
    def test_no_value_makes_a_dot_segment_or_an_empty_one(self, value: str) -> None:
        """Any value is refused, or leaves no '//' and no dot segment, however decoded."""
        template = Template.parse("/prefix/{+x}/end")

        try:
            path = template.expand({"x": value})
        except TemplateError:
            return

        # Read as a lenient server would: decoded twice, backslashes as '/'.
        segments = unquote(unquote(path)).replace("\\", "/").split("/")
        assert path.startswith("/prefix/")
        assert path.endswith("/end")
        assert "" not in segments[1:]
        assert not {".", ".."} & set(segments)


class TestBodyStrings:
    """A body template's strings are found with their place; a lone expression keeps its type."""

    def test_strings_are_yielded_with_their_keys_in_document_order(self) -> None:
        """Every string, however nested, comes with the keys and indexes that lead to it."""
        body = {"a": "{x}", "b": [1, "t-{y}", {"c": "z"}], "d": None, "e": True}

        found = list(body_strings(body))

        assert found == [(("a",), "{x}"), (("b", 1), "t-{y}"), (("b", 2, "c"), "z")]

    def test_a_top_level_string_has_an_empty_path(self) -> None:
        """A body that is one string is found at the empty path."""
        assert list(body_strings("{x}")) == [((), "{x}")]

    def test_a_deep_body_is_walked_without_recursion(self) -> None:
        """A body nested 5,000 levels deep (built in Python) is walked whole."""
        body: object = "{x}"
        for _ in range(5000):
            body = [body]

        found = list(body_strings(body))

        assert len(found) == 1
        assert len(found[0][0]) == 5000

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("{count}", Variable("count")),
            ("{+path}", Variable("path", reserved=True)),
            ("n-{count}", None),
            ("{a}{b}", None),
            ("plain", None),
            ("", None),
        ],
    )
    def test_whole_variable_is_one_expression_alone(
        self, text: str, expected: Variable | None
    ) -> None:
        """Only a string that is exactly one expression keeps its value's type."""
        assert whole_variable(text) == expected
