"""Common mistakes on the command line: one clear line on stderr, exit 2, no traceback."""

from __future__ import annotations

import io
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.audit import open_audit
from engine.cli import main
from engine.simulators import FAULT_KINDS, create_simulator, parse_faults
from engine.stores import StoreError
from tests.engine.stores_util import make_store

MODEL = "model_id=5a7e1d34-18c0-4a8e-bf4e-7f7a5d1f0c22"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A socket listening on 127.0.0.1 that no one answers: a connection would queue on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.settimeout(0.0)  # accept() returns at once
    try:
        yield sock
    finally:
        sock.close()


def _url(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _nothing_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """A plain text file."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n", encoding="utf-8")
    return path


@pytest.fixture
def audit_db(tmp_path: Path) -> Path:
    """An (empty) SQLite audit log."""
    path = tmp_path / "audit.db"
    open_audit(path).close()
    return path


@pytest.fixture
def job_store(tmp_path: Path) -> Path:
    """An (empty) SQLite job store."""
    path = tmp_path / "jobs.db"
    make_store(path)
    return path


# -- --store and --audit ------------------------------------------------------------------


def test_store_that_is_a_text_file_is_refused(
    text_file: Path, listener: socket.socket
) -> None:
    """`--store` naming a text file exits 2 with one line, before any request."""
    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL,
        "--base-url", _url(listener), "--store", str(text_file),
    )  # fmt: skip

    assert code == 2
    assert (
        _one_line(err)
        == f"statepoll: {text_file} is not a job store (not a SQLite database)"
    )
    assert _nothing_connected(listener)


def test_store_that_is_an_audit_log_is_refused_and_left_alone(
    audit_db: Path, listener: socket.socket
) -> None:
    """`--store` naming a SQLite audit log exits 2 and adds no table to it."""
    before = audit_db.read_bytes()

    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL,
        "--base-url", _url(listener), "--store", str(audit_db),
    )  # fmt: skip

    assert code == 2
    assert _one_line(err) == f"statepoll: {audit_db} is not a job store (an audit log)"
    assert audit_db.read_bytes() == before
    assert _nothing_connected(listener)


def test_opening_a_store_on_a_non_store_raises_store_error(text_file: Path) -> None:
    """Opening a file that is not a store raises StoreError (a ValueError)."""
    with pytest.raises(StoreError, match="is not a job store") as info:
        make_store(text_file)

    assert isinstance(info.value, ValueError)


def test_store_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    """A store in a directory that does not exist names the directory."""
    with pytest.raises(StoreError, match="no directory"):
        make_store(tmp_path / "missing" / "jobs.db")


def test_audit_in_a_missing_directory_is_refused(
    tmp_path: Path, listener: socket.socket
) -> None:
    """`--audit` in a directory that does not exist exits 2 with one line."""
    target = tmp_path / "missing" / "audit.jsonl"

    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL,
        "--base-url", _url(listener), "--audit", str(target),
    )  # fmt: skip

    assert code == 2
    assert (
        _one_line(err) == f"statepoll: --audit {target}: no directory {target.parent}"
    )
    assert _nothing_connected(listener)


def test_audit_target_that_is_a_job_store_is_refused(
    job_store: Path, listener: socket.socket
) -> None:
    """`--audit` naming a job store exits 2: records are not appended to it."""
    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL,
        "--base-url", _url(listener), "--audit", str(job_store),
    )  # fmt: skip

    assert code == 2
    assert "is a job store, not an audit log" in _one_line(err)


@pytest.mark.parametrize("action", ["verify", "stats", "show"])
def test_audit_verbs_read_a_job_store(action: str, job_store: Path) -> None:
    """`audit verify|stats|show` read a job store's own audit table (exit 0)."""
    code, out, err = _run("audit", action, str(job_store))

    assert (code, err) == (0, "")
    if action == "verify":
        assert out == f"{job_store}: intact\n"


@pytest.mark.parametrize("action", ["verify", "stats", "show"])
def test_audit_verbs_refuse_a_text_file(action: str, text_file: Path) -> None:
    """`audit verify|stats|show` on a text file exits 2: it is not an audit log."""
    code, _, err = _run("audit", action, str(text_file))

    assert code == 2
    assert (
        _one_line(err)
        == f"statepoll: {text_file} is not an audit log (its first line is not an audit record)"
    )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("binary.bin", bytes(range(256)) * 4),
        ("fake.db", b"id,name\n1,x\n"),
        ("other.sqlite", None),
    ],
)
def test_audit_verbs_refuse_other_files(
    name: str, content: bytes | None, tmp_path: Path
) -> None:
    """A binary file, a .db that is not SQLite, a SQLite file without an audit table: exit 2."""
    path = tmp_path / name
    if content is None:
        db = sqlite3.connect(path)  # SQLite, with a table and no audit table
        db.execute("CREATE TABLE notes (text TEXT)")
        db.close()
    else:
        path.write_bytes(content)

    code, _, err = _run("audit", "verify", str(path))

    assert code == 2
    assert "not an audit log" in _one_line(err)


def test_audit_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """`audit verify` of a path that does not exist exits 2."""
    code, _, err = _run("audit", "verify", str(tmp_path / "none.jsonl"))

    assert code == 2
    assert _one_line(err).startswith("statepoll: no audit log or job store at")


# -- simulate -------------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_simulate_port_out_of_range_is_refused(port: str) -> None:
    """`simulate --port` outside 0-65535 exits 2 with one line naming the range."""
    code, _, err = _run("simulate", "mindee", "--port", port)

    assert code == 2
    assert "a port is 0 to 65535" in _one_line(err)


def test_simulate_on_a_busy_port_is_refused(listener: socket.socket) -> None:
    """`simulate --port` on a port already listened on exits 2, naming the address."""
    port = listener.getsockname()[1]

    code, _, err = _run("simulate", "mindee", "--port", str(port))

    assert code == 2
    assert (
        _one_line(err)
        == f"statepoll: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_simulate_with_bogus_faults_names_the_item_and_the_kinds() -> None:
    """`simulate --faults bogus` exits 2; the line names 'bogus' and every known kind."""
    code, _, err = _run("simulate", "mindee", "--faults", "429:0.1,bogus")

    line = _one_line(err)
    assert code == 2
    assert "bad fault 'bogus': unknown fault kind 'bogus'" in line
    assert all(kind in line for kind in FAULT_KINDS)
    assert "FaultRule" not in line


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bogus", "unknown fault kind 'bogus'"),
        ("50:0.5", "unknown fault kind '50' (did you mean '503'?)"),
        ("429:2", "a rate is a number from 0 to 1, not '2'"),
        ("429:nan", "a rate is a number from 0 to 1, not 'nan'"),
        ("reset@0", "request numbers are whole numbers from 1"),
        ("reset@x", "request numbers are whole numbers from 1"),
        ("delay=-1", "delay is a number of seconds >= 0"),
        ("scope=some", "scope is 'get' or 'all'"),
        ("speed=2", "unknown option 'speed'"),
    ],
)
def test_parse_faults_names_the_bad_item(text: str, says: str) -> None:
    """parse_faults raises ValueError naming the item, what is wrong, and the kinds."""
    with pytest.raises(ValueError, match="bad fault") as info:
        parse_faults(text)

    assert f"bad fault {text!r}: {says}" in str(info.value)
    assert "kinds: 429, 500" in str(info.value)


def test_parse_faults_reads_every_form() -> None:
    """KIND, KIND:RATE, KIND@N+M and the options all parse."""
    faults = parse_faults("html,429:0.1,reset@3+5,delay=0.2,retry-after=1,scope=all")

    assert [(r.kind, r.rate, r.at) for r in faults.rules] == [
        ("html", 1.0, ()),
        ("429", 0.1, ()),
        ("reset", 0.0, (3, 5)),
    ]
    assert (faults.delay, faults.retry_after, faults.scope) == (0.2, 1.0, "all")


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf")])
def test_create_simulator_refuses_a_bad_time_scale(scale: float) -> None:
    """A simulator's time scale must be positive and finite."""
    with pytest.raises(
        ValueError, match="time_scale must be a positive, finite number"
    ):
        create_simulator("mindee", time_scale=scale)


# -- values checked by the parser ----------------------------------------------------------


@pytest.mark.parametrize("scale", ["0", "-1", "nan", "inf", "fast"])
@pytest.mark.parametrize(
    "verb",
    [
        ("simulate", "mindee"),
        ("run", "mindee", "inference"),
        ("track", "mindee", "inference", "job-1"),
        ("resume", "--store", "jobs.db"),
    ],
)
def test_time_scale_must_be_positive_and_finite(
    verb: tuple[str, ...], scale: str
) -> None:
    """`--time-scale` zero, negative, not finite or not a number exits 2 with one line."""
    code, _, err = _run(*verb, f"--time-scale={scale}")

    assert code == 2
    assert _one_line(err) == (
        f"statepoll {verb[0]}: argument --time-scale: the time scale must be a positive "
        f"number, not {scale!r} (see statepoll {verb[0]} --help)"
    )


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8001", "localhost:8001", "http://", "ftp://127.0.0.1", "//127.0.0.1"],
)
def test_base_url_needs_a_scheme_and_a_host(url: str) -> None:
    """`--base-url` without an http(s) scheme or a host exits 2, showing the right form."""
    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL, "--base-url", url
    )

    line = _one_line(err)
    assert code == 2
    assert f"{url!r} is not an http(s) URL with a host" in line
    assert "http://127.0.0.1:8001" in line


def test_base_url_with_a_port_out_of_range_is_refused() -> None:
    """`--base-url` with port 99999 exits 2 with one line."""
    code, _, err = _run(
        "track", "mindee", "inference", "j", "--base-url", "http://127.0.0.1:99999"
    )

    assert code == 2
    assert "has a bad port" in _one_line(err)


def test_base_url_query_is_not_echoed() -> None:
    """A refused `--base-url` is shown without its query (it may carry a token)."""
    code, _, err = _run(
        "run", "mindee", "inference", "--base-url", "127.0.0.1:1/?sig=SECRET"
    )

    assert code == 2
    assert "SECRET" not in err


@pytest.mark.parametrize("timeout", ["0", "-5", "nan"])
def test_timeout_must_be_positive(timeout: str) -> None:
    """`--timeout` must be a positive number of seconds."""
    code, _, err = _run("run", "mindee", "inference", f"--timeout={timeout}")

    assert code == 2
    assert "a timeout must be a positive number" in _one_line(err)


def test_argument_errors_are_one_line() -> None:
    """A missing argument is one line pointing at --help, not argparse's usage block."""
    code, _, err = _run("run", "mindee")

    assert code == 2
    assert _one_line(err) == (
        "statepoll run: the following arguments are required: LIFECYCLE "
        "(see statepoll run --help)"
    )


# -- inputs, checked before any request -----------------------------------------------------


def test_wrong_input_name_gets_a_did_you_mean(listener: socket.socket) -> None:
    """A misspelt --input name exits 2 with a did-you-mean and the declared names."""
    code, _, err = _run(
        "run",
        "mindee",
        "inference",
        "--input",
        "modle_id=x",
        "--base-url",
        _url(listener),
    )

    line = _one_line(err)
    assert code == 2
    assert (
        "unknown input 'modle_id' (did you mean 'model_id'?) for mindee/inference"
        in line
    )
    assert "Declared: product, model_id, file, url" in line
    assert _nothing_connected(listener)


def test_several_wrong_input_names_are_named_together() -> None:
    """Every unknown --input name is in the one line."""
    code, _, err = _run(
        "run", "oneclickdz", "mobile_topup", "--input", "plan=X", "--input", "msisdn=0"
    )

    line = _one_line(err)
    assert code == 2
    assert "unknown inputs 'plan' (did you mean 'plan_code'?), 'msisdn'" in line


def test_missing_required_inputs_are_reported_together(listener: socket.socket) -> None:
    """Every missing required input is named in one line, before any request."""
    code, _, err = _run(
        "run", "oneclickdz", "mobile_topup", "--base-url", _url(listener)
    )

    assert code == 2
    assert _one_line(err).startswith(
        "statepoll: missing required inputs for oneclickdz/mobile_topup: plan_code, MSSIDN"
    )
    assert _nothing_connected(listener)


def test_an_input_with_a_default_is_not_required() -> None:
    """Required inputs that have a default (azure api_version) are not reported missing."""
    code, _, err = _run("run", "azure-translator", "batch")

    assert code == 2
    assert _one_line(err).startswith(
        "statepoll: missing required input for azure-translator/batch: inputs "
    )


def test_input_of_the_wrong_type_is_refused() -> None:
    """An integer input given a word exits 2 naming the input and the type."""
    code, _, err = _run(
        "run", "oneclickdz", "mobile_topup", "--input", "plan_code=P",
        "--input", "MSSIDN=0661234501", "--input", "amount=lots",
    )  # fmt: skip

    assert code == 2
    assert _one_line(err) == "statepoll: --input amount: expected integer, not 'lots'"


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """`--file` naming no file exits 2."""
    code, _, err = _run(
        "run",
        "mindee",
        "inference",
        "--input",
        MODEL,
        "--file",
        str(tmp_path / "x.pdf"),
    )

    assert code == 2
    assert _one_line(err) == f"statepoll: --file {tmp_path / 'x.pdf'}: no such file"


def test_unknown_lifecycle_gets_a_did_you_mean() -> None:
    """A misspelt lifecycle exits 2 with a did-you-mean and the declared ones."""
    code, _, err = _run("run", "oneclickdz", "mobile_top")

    assert code == 2
    assert _one_line(err) == (
        "statepoll: oneclickdz has no lifecycle 'mobile_top' (did you mean 'mobile_topup'?). "
        "Declared: mobile_topup, internet_topup, gift_card"
    )


def test_missing_credential_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    """No API key in the environment exits 2 naming the variable to set."""
    monkeypatch.delenv("MINDEE_V2_API_KEY", raising=False)

    code, _, err = _run(
        "run", "mindee", "inference", "--input", MODEL, "--input", "url=https://x/a.pdf",
        "--base-url", _url(listener),
    )  # fmt: skip

    assert code == 2
    assert "MINDEE_V2_API_KEY" in _one_line(err)
    assert _nothing_connected(listener)


# -- the same, out of process ------------------------------------------------------------------


def test_mistakes_print_no_traceback_from_the_real_command(
    text_file: Path, tmp_path: Path
) -> None:
    """The installed command prints one line and exits 2 for each mistake, never a traceback."""
    cases = [
        ("run", "mindee", "inference", "--input", MODEL, "--store", str(text_file)),
        ("audit", "verify", str(text_file)),
        ("simulate", "mindee", "--faults", "bogus"),
        ("run", "mindee", "inference", "--audit", str(tmp_path / "no" / "a.jsonl")),
    ]
    for argv in cases:
        done = subprocess.run(
            [sys.executable, "-m", "engine", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert done.returncode == 2, argv
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr
