"""A service's model and protocol → the poll request of a waiter's operation.

:func:`_protocol` picks the protocol a spec can send; :class:`_Shapes` reads
botocore's shapes (member names → wire names, and what a path names);
:class:`_Request` builds an operation's request by its protocol (``json``,
``rest-json``/``rest-xml``, ``query``/``ec2``), its inputs and its job id
member.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs

from ._jmespath import STAR, UnconvertibleError

#: Protocols a spec can send, by preference (botocore's own order lists CBOR first).
_PROTOCOLS: Final = ("json", "rest-json", "query", "ec2", "rest-xml")
_XML: Final = frozenset({"query", "ec2", "rest-xml"})
_INPUT_TYPES: Final[Mapping[str, str]] = {
    "string": "string",
    "timestamp": "string",
    "blob": "string",
    "integer": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "list": "array",
    "structure": "object",
    "map": "object",
}
_SCALARS: Final = frozenset({"string", "integer", "number", "boolean"})


def _protocol(metadata: Mapping[str, Any]) -> str | None:
    offered = metadata.get("protocols") or [metadata.get("protocol")]
    return next((p for p in _PROTOCOLS if p in offered), None)


# -- shapes and requests ------------------------------------------------------------


@attrs.frozen
class _Shapes:
    """botocore's shapes: member names → wire names, and what a path names."""

    shapes: Mapping[str, Any]

    def get(self, name: str | None) -> Mapping[str, Any]:
        """Return the shape called ``name`` (an empty one when there is none)."""
        shape: Mapping[str, Any] = self.shapes.get(name or "", {})
        return shape

    def resolver(self, output: Mapping[str, Any], names: str = "wire") -> Any:
        """Return a resolver of paths from the output shape: (names, type of what they name).

        ``names`` "wire" gives JSON wire names (``locationName``); "member"
        keeps botocore's member names (XML replies: no JSON wire to match).
        """

        def resolve(tokens: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
            wire, kind = self._walk(output, tokens)
            return (wire if names == "wire" else tokens), kind

        return resolve

    def _walk(
        self, shape: Mapping[str, Any], tokens: tuple[str, ...]
    ) -> tuple[tuple[str, ...], str | None]:
        wire: list[str] = []
        current: Mapping[str, Any] | None = shape
        if shape.get("payload") and tokens and tokens[0] == shape["payload"]:
            # The payload member is the body itself.
            current = self.get(shape["members"][tokens[0]]["shape"])
            tokens = tokens[1:]
        for token in tokens:
            current, name = self._step(current, token)
            wire.append(name)
        kind = None if current is None else current.get("type")
        return tuple(wire), kind

    def _step(
        self, shape: Mapping[str, Any] | None, token: str
    ) -> tuple[Mapping[str, Any] | None, str]:
        if shape is None:
            return None, token
        kind = shape.get("type")
        if token == STAR or token.isdigit():
            inner = {"list": "member", "map": "value"}.get(kind or "")
            return (self.get(shape[inner]["shape"]) if inner else None), token
        member = shape.get("members", {}).get(token)
        if member is None:
            return None, token
        return self.get(member["shape"]), member.get("locationName", token)


@attrs.define
class _Request:
    """The poll request of one operation, its inputs and its job id member."""

    operation: Mapping[str, Any]
    shapes: _Shapes
    metadata: Mapping[str, Any]
    protocol: str
    inputs: dict[str, Any] = attrs.Factory(dict)
    left_out: list[str] = attrs.Factory(list)

    def build(self) -> tuple[dict[str, Any], dict[str, Any], str | None, list[str]]:
        """Return (request, inputs, job id member, members not sent)."""
        shape = self.shapes.get(self.operation.get("input", {}).get("shape"))
        members: Mapping[str, Any] = shape.get("members", {})
        required = [
            m
            for m in shape.get("required", [])
            if m in members
            and self._type(members[m]) == "string"
            and members[m].get("location") != "header"
        ]
        job_id = required[0] if len(required) == 1 else None
        for member, spec in members.items():
            if member != job_id:
                self.inputs[member] = {
                    "in": "none",
                    "type": self._type(spec),
                    **(
                        {"required": True}
                        if member in shape.get("required", [])
                        else {}
                    ),
                    "description": f"{member} ({self.shapes.get(spec['shape']).get('type')})",
                }
        if self.protocol == "json":
            request = self._json(members, job_id)
        elif self.protocol in {"query", "ec2"}:
            request = self._form(members, job_id)
        else:
            request = self._rest(shape, members, job_id)
        return request, self.inputs, job_id, self.left_out

    def _type(self, member: Mapping[str, Any]) -> str:
        return _INPUT_TYPES.get(
            self.shapes.get(member["shape"]).get("type", ""), "string"
        )

    def _value(self, member: str, job_id: str | None) -> str:
        return "{job_id}" if member == job_id else "{" + member + "}"

    def _json(self, members: Mapping[str, Any], job_id: str | None) -> dict[str, Any]:
        target = f"{self.metadata['targetPrefix']}.{self.operation['name']}"
        version = self.metadata.get("jsonVersion", "1.0")
        return {
            "method": "POST",
            "path": "/",
            "headers": {
                "X-Amz-Target": target,
                "Content-Type": f"application/x-amz-json-{version}",
            },
            "body": {
                "json": {
                    spec.get("locationName", member): self._value(member, job_id)
                    for member, spec in members.items()
                }
            },
        }

    def _form(self, members: Mapping[str, Any], job_id: str | None) -> dict[str, Any]:
        form: dict[str, Any] = {
            "Action": self.operation["name"],
            "Version": self.metadata["apiVersion"],
        }
        for member, spec in members.items():
            if self._type(spec) not in _SCALARS:
                # Lists and structures flatten to numbered fields (Name.member.1).
                self._leave_out(member)
                continue
            name = spec.get("queryName") or spec.get("locationName", member)
            if self.protocol == "ec2" and "queryName" not in spec:
                name = name[:1].upper() + name[1:]
            form[name] = self._value(member, job_id)
        return {"method": "POST", "path": "/", "body": {"form": form}}

    def _rest(
        self, shape: Mapping[str, Any], members: Mapping[str, Any], job_id: str | None
    ) -> dict[str, Any]:
        http = self.operation["http"]
        method = http["method"]
        if method not in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
            msg = f"HTTP method {method} (requests are GET, POST, PUT, PATCH or DELETE)"
            raise UnconvertibleError(msg)
        uri, _, fixed = http["requestUri"].partition("?")
        by_location = {
            spec.get("locationName", member): member
            for member, spec in members.items()
            if spec.get("location") == "uri"
        }

        def label(match: re.Match[str]) -> str:
            name, greedy = match.group(1), match.group(2)
            member = by_location.get(name, name)
            if member in self.inputs:
                self.inputs[member]["in"] = "path"
            value = "job_id" if member == job_id else member
            return "{+" + value + "}" if greedy else "{" + value + "}"

        request: dict[str, Any] = {
            "method": method,
            "path": re.sub(r"\{([^}+]+)(\+?)\}", label, uri),
        }
        query = dict(parse_qsl(fixed, keep_blank_values=True))
        body: dict[str, Any] = {}
        for member, spec in members.items():
            location = spec.get("location")
            if location == "querystring":
                self._query(member, spec, job_id, query)
            elif location in {"header", "headers"}:
                self._leave_out(member)
            elif location is None:
                if (
                    method == "GET"
                    or self.protocol == "rest-xml"
                    or shape.get("payload")
                ):
                    self._leave_out(member)
                else:
                    body[spec.get("locationName", member)] = self._value(member, job_id)
        if query:
            request["query"] = query
        if body:
            request["body"] = {"json": body}
        return request

    def _query(
        self,
        member: str,
        spec: Mapping[str, Any],
        job_id: str | None,
        query: dict[str, str],
    ) -> None:
        name = spec.get("locationName", member)
        if member == job_id:
            query[name] = "{job_id}"
        elif self._type(spec) in _SCALARS:
            self.inputs[member]["in"] = "query"
            if name != member:
                self.inputs[member]["name"] = name
        else:
            self._leave_out(member)

    def _leave_out(self, member: str) -> None:
        self.left_out.append(member)
        self.inputs.pop(member, None)
