"""The throwaway PostgreSQL fixture: when it skips or fails, and that it works with psycopg 3."""

from __future__ import annotations

import asyncio
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

from tests.postgres import (
    PostgresCluster,
    PostgresUnavailableError,
    cluster_parent,
    command_prefix,
    database_name,
    find_bindir,
    report_unavailable,
    running_cluster,
    server_user,
    unavailable_outcome,
)

ROOT = Path(__file__).resolve().parent.parent
# Every wait on another process or on the server is bounded by this.
PATIENCE = 30.0


# -- skip or fail ----------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "True", "yes", "github-actions"])
def test_missing_postgres_fails_when_ci_is_set(value: str) -> None:
    """With CI set to anything but an opt-out, a missing PostgreSQL fails the tests."""
    assert unavailable_outcome({"CI": value}) == "fail"


@pytest.mark.parametrize(
    "environ", [{}, {"CI": ""}, {"CI": "0"}, {"CI": "false"}, {"CI": "No"}]
)
def test_missing_postgres_skips_without_ci(environ: dict[str, str]) -> None:
    """Without CI (or with CI=0/false/no), a missing PostgreSQL skips the tests."""
    assert unavailable_outcome(environ) == "skip"


def test_report_unavailable_fails_in_ci_naming_what_is_missing() -> None:
    """In CI the failure message carries the reason the server could not start."""
    error = PostgresUnavailableError("no initdb in /usr/lib/postgresql/15/bin")

    with pytest.raises(pytest.fail.Exception) as info:
        report_unavailable(error, {"CI": "true"})

    assert "required when CI is set" in str(info.value)
    assert "no initdb in /usr/lib/postgresql/15/bin" in str(info.value)


def test_report_unavailable_skips_locally_with_the_reason() -> None:
    """Locally the test is skipped, and the skip reason says what is missing."""
    error = PostgresUnavailableError("no initdb in /usr/lib/postgresql/15/bin")

    with pytest.raises(pytest.skip.Exception) as info:
        report_unavailable(error, {})

    assert "no initdb in /usr/lib/postgresql/15/bin" in str(info.value)


# -- finding the binaries and the user ---------------------------------------------------


def fake_bindir(
    directory: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")
) -> Path:
    """Create ``directory`` holding executable stand-ins named ``names``."""
    directory.mkdir(parents=True)
    for name in names:
        (directory / name).write_text("#!/bin/sh\nexit 0\n")
        (directory / name).chmod(0o755)
    return directory


def test_find_bindir_names_every_place_it_looked(tmp_path: Path) -> None:
    """No server binaries anywhere: the reason lists each place and how to install them."""
    with pytest.raises(PostgresUnavailableError) as info:
        find_bindir(
            preferred=(tmp_path / "15" / "bin",),
            search_path=str(tmp_path),
            versions_root=tmp_path,
        )

    reason = info.value.reason
    assert str(tmp_path / "15" / "bin") in reason
    assert "pg_config --bindir (no pg_config on PATH)" in reason
    assert "PATH" in reason
    assert f"{tmp_path}/*/bin" in reason
    assert "apt-get install -y postgresql" in reason


def test_find_bindir_skips_a_directory_missing_a_server_binary(tmp_path: Path) -> None:
    """A directory with initdb but no postgres is passed over for a complete one."""
    partial = fake_bindir(tmp_path / "partial", ("initdb", "pg_ctl"))
    complete = fake_bindir(tmp_path / "complete")

    found = find_bindir(
        preferred=(partial, complete), search_path="", versions_root=tmp_path
    )

    assert found == complete


def test_find_bindir_uses_initdb_on_path(tmp_path: Path) -> None:
    """Without the preferred directory, the directory of an initdb on PATH is used."""
    on_path = fake_bindir(tmp_path / "bin")

    found = find_bindir(
        preferred=(tmp_path / "absent",),
        search_path=str(on_path),
        versions_root=tmp_path,
    )

    assert found == on_path


def test_find_bindir_takes_the_newest_numbered_version(tmp_path: Path) -> None:
    """Among /usr/lib/postgresql/*/bin the highest version wins, by number (16 over 9)."""
    fake_bindir(tmp_path / "9" / "bin")
    newest = fake_bindir(tmp_path / "16" / "bin")

    found = find_bindir(preferred=(), search_path="", versions_root=tmp_path)

    assert found == newest


def test_root_without_a_postgres_user_is_unavailable() -> None:
    """As root with no postgres account, the reason says PostgreSQL refuses root."""

    def no_such_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    with pytest.raises(PostgresUnavailableError) as info:
        server_user(0, no_such_user)

    assert "no 'postgres' user" in info.value.reason


def test_a_non_root_user_runs_the_server_as_itself() -> None:
    """Not root: no service user and no command prefix."""
    assert server_user(1000) is None
    assert command_prefix(None) == ()


def test_root_switches_user_with_runuser_else_setpriv() -> None:
    """The runuser tool is preferred; setpriv (util-linux too) stands in without it."""
    both = {"runuser": "/usr/sbin/runuser", "setpriv": "/usr/bin/setpriv"}
    only_setpriv = {"setpriv": "/usr/bin/setpriv"}

    assert command_prefix("postgres", both.get) == (
        "/usr/sbin/runuser",
        "-u",
        "postgres",
        "--",
    )
    assert command_prefix("postgres", only_setpriv.get)[:2] == (
        "/usr/bin/setpriv",
        "--reuid=postgres",
    )


def test_root_without_runuser_or_setpriv_is_unavailable() -> None:
    """Without a way to drop root, the reason names both missing tools."""
    with pytest.raises(PostgresUnavailableError) as info:
        command_prefix("postgres", dict[str, str]().get)

    assert "neither runuser nor setpriv" in info.value.reason


def test_cluster_goes_to_the_first_directory_with_room(tmp_path: Path) -> None:
    """A candidate with enough free space is used; a missing one is passed over."""
    assert cluster_parent((tmp_path / "absent", tmp_path), min_free=0) == tmp_path


def test_cluster_goes_to_the_temp_dir_when_no_candidate_has_room(
    tmp_path: Path,
) -> None:
    """No candidate with the room asked for: None, meaning the system temp dir."""
    assert cluster_parent((tmp_path,), min_free=1 << 62) is None


def test_database_names_are_valid_unique_identifiers() -> None:
    """A test's node name becomes a lowercase identifier of at most 63 bytes, numbered."""
    name = database_name("test_Claim[two-sessions/ü]" * 5, 12)

    assert name.startswith("t12_test_claim_two_sessions_")
    assert len(name) <= 63
    assert name.replace("_", "").isalnum()
    assert name.isascii()


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """Yield a temp dir the postgres service user can enter (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="statepoll-pg-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_failing_initdb_is_unavailable_and_leaves_nothing_behind(
    shared_tmp: Path,
) -> None:
    """A failing initdb's own message reaches the reason; the cluster directory is removed."""
    bindir = fake_bindir(shared_tmp / "bin")
    (bindir / "initdb").write_text(
        "#!/bin/sh\necho 'initdb: simulated disk full' >&2\nexit 1\n"
    )
    parent = shared_tmp / "clusters"
    parent.mkdir()
    parent.chmod(0o755)

    with (
        pytest.raises(PostgresUnavailableError) as info,
        running_cluster(bindir=bindir, parent=parent),
    ):
        pass

    assert "initdb failed (exit 1): initdb: simulated disk full" in info.value.reason
    assert list(parent.iterdir()) == []


# -- the running cluster ---------------------------------------------------------------


def show(conn: psycopg.Connection[tuple[object, ...]], setting: str) -> str:
    """Return a server setting as SHOW prints it."""
    row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def test_cluster_is_postgres_15_on_loopback_without_durability(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    """The session's server is 15+, listens on 127.0.0.1 only, and trades durability for speed."""
    with psycopg.connect(postgres_url) as conn:
        version = int(show(conn, "server_version_num"))
        listen = show(conn, "listen_addresses")
        sockets = show(conn, "unix_socket_directories")
        durability = [
            show(conn, s) for s in ("fsync", "synchronous_commit", "full_page_writes")
        ]

    assert (
        postgres_url
        == f"postgresql://statepoll@127.0.0.1:{postgres_cluster.port}/statepoll"
    )
    assert version >= 150000
    assert listen == "127.0.0.1"
    assert sockets == str(postgres_cluster.socket_dir)
    assert durability == ["off", "off", "off"]


def test_server_runs_as_the_service_user_when_tests_run_as_root(
    postgres_cluster: PostgresCluster,
) -> None:
    """Root hands the server to 'postgres'; anyone else runs it as themselves."""
    owner = Path(f"/proc/{postgres_cluster.postmaster_pid}").stat().st_uid
    expected = pwd.getpwnam("postgres").pw_uid if os.geteuid() == 0 else os.geteuid()

    assert owner == expected
    assert postgres_cluster.base.stat().st_uid == expected


def test_sync_connection_creates_writes_and_reads_a_table(postgres_db: str) -> None:
    """A blocking psycopg connection to the test's database round-trips rows."""
    with psycopg.connect(postgres_db) as conn:
        conn.execute("CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL)")
        conn.execute("INSERT INTO jobs VALUES (1, 'queued'), (2, 'running')")
        rows = conn.execute("SELECT id, state FROM jobs ORDER BY id").fetchall()

    assert rows == [(1, "queued"), (2, "running")]


@pytest.mark.anyio
async def test_async_connection_creates_writes_and_reads_a_table(
    postgres_db: str,
) -> None:
    """An AsyncConnection to the test's database round-trips rows."""
    async with (
        asyncio.timeout(PATIENCE),
        await psycopg.AsyncConnection.connect(postgres_db) as conn,
    ):
        await conn.execute(
            "CREATE TABLE jobs (id int PRIMARY KEY, state text NOT NULL)"
        )
        await conn.execute("INSERT INTO jobs VALUES (1, 'queued')")
        cursor = await conn.execute("SELECT id, state FROM jobs")
        rows = await cursor.fetchall()

    assert rows == [(1, "queued")]


def test_each_test_database_starts_empty(postgres_db: str) -> None:
    """postgres_db is created from template0: no tables, whatever other tests did."""
    with psycopg.connect(postgres_db) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchone()

    assert tables == (0,)


def test_two_test_databases_are_isolated(make_postgres_db: Callable[[], str]) -> None:
    """A table made in one fresh database does not exist in another."""
    first, second = make_postgres_db(), make_postgres_db()
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE jobs (id int)")
    with psycopg.connect(second) as conn:
        in_second = conn.execute("SELECT to_regclass('jobs')").fetchone()
    with psycopg.connect(first) as conn:
        in_first = conn.execute("SELECT to_regclass('jobs')::text").fetchone()

    assert first != second
    assert in_second == (None,)
    assert in_first == ("jobs",)


def test_dropping_a_database_ends_a_session_left_open(
    postgres_cluster: PostgresCluster,
) -> None:
    """drop_database does not wait on a connection a failed test left behind."""
    url = postgres_cluster.create_database("left_open")
    with psycopg.connect(url) as conn:
        postgres_cluster.drop_database("left_open")

        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")


@pytest.mark.anyio
async def test_skip_locked_gives_two_sessions_different_rows(postgres_db: str) -> None:
    """FOR UPDATE SKIP LOCKED: two open transactions claim disjoint due rows, a third gets none."""
    claim = "SELECT id FROM jobs ORDER BY id LIMIT 2 FOR UPDATE SKIP LOCKED"
    async with asyncio.timeout(PATIENCE):
        async with await psycopg.AsyncConnection.connect(
            postgres_db, autocommit=True
        ) as setup:
            await setup.execute("CREATE TABLE jobs (id int PRIMARY KEY)")
            await setup.execute("INSERT INTO jobs SELECT generate_series(1, 4)")
        async with (
            await psycopg.AsyncConnection.connect(postgres_db) as one,
            await psycopg.AsyncConnection.connect(postgres_db) as two,
            await psycopg.AsyncConnection.connect(postgres_db) as three,
        ):
            # Each connection stays inside its transaction, holding its row locks.
            first = await (await one.execute(claim)).fetchall()
            second = await (await two.execute(claim)).fetchall()
            third = await (await three.execute(claim)).fetchall()

    assert first == [(1,), (2,)]
    assert second == [(3,), (4,)]
    assert third == []


@pytest.mark.anyio
async def test_notify_wakes_a_listening_connection(postgres_db: str) -> None:
    """LISTEN/NOTIFY between two connections arrives within a bounded wait, payload intact."""
    async with (
        asyncio.timeout(PATIENCE),
        await psycopg.AsyncConnection.connect(postgres_db, autocommit=True) as listener,
        await psycopg.AsyncConnection.connect(postgres_db, autocommit=True) as notifier,
    ):
        await listener.execute("LISTEN statepoll_wake")
        await notifier.execute("SELECT pg_notify('statepoll_wake', 'job-17')")
        received = [n async for n in listener.notifies(timeout=10.0, stop_after=1)]

    assert [(n.channel, n.payload) for n in received] == [("statepoll_wake", "job-17")]


# -- nothing is left behind ------------------------------------------------------------


def _processes_mentioning(text: str) -> list[int]:
    # pgrep -f, without needing procps: a command line that names the directory.
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if text.encode() in cmdline:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    # A zombie has exited; it only waits for a parent (maybe PID 1) to reap it.
    return "State:\tZ" in status


def _left_behind(base: Path, postmaster: int) -> bool:
    return (
        base.exists() or not _gone(postmaster) or bool(_processes_mentioning(str(base)))
    )


_HOLDER = textwrap.dedent(
    """
    import signal, time
    from tests.postgres import running_cluster
    # A run started in the background may inherit SIGINT ignored; Ctrl-C is the point here.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with running_cluster() as cluster:
        print(cluster.base, cluster.postmaster_pid, flush=True)
        time.sleep(60)
    """
)


@attrs.frozen
class Holder:
    """A separate Python process holding a running cluster, as a test run would."""

    process: subprocess.Popen[str]
    base: Path
    postmaster: int


@pytest.fixture
def holder() -> Iterator[Holder]:
    """Start a process that runs a cluster and sleeps; kill it after the test if still there."""
    process = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], PATIENCE)
        assert ready, "the holder process did not report its cluster"
        base, postmaster = process.stdout.readline().split()
        yield Holder(process, Path(base), int(postmaster))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=PATIENCE)
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.postgres
def test_an_interrupted_run_stops_its_cluster_before_it_exits(holder: Holder) -> None:
    """Ctrl-C (SIGINT) unwinds running_cluster: server stopped, directory gone, at exit."""
    assert holder.base.is_dir()
    assert not _gone(holder.postmaster)

    holder.process.send_signal(signal.SIGINT)
    holder.process.wait(timeout=PATIENCE)

    assert not holder.base.exists()
    assert _gone(holder.postmaster)


@pytest.mark.postgres
def test_a_killed_run_is_cleaned_up_by_its_watchdog(holder: Holder) -> None:
    """After kill -9 of the test process, the watchdog stops the server and removes its dir."""
    assert holder.base.is_dir()
    assert not _gone(holder.postmaster)

    holder.process.kill()
    holder.process.wait(timeout=PATIENCE)
    # The watchdog notices the closed pipe a moment after the holder is gone.
    for _ in range(int(PATIENCE / 0.05)):
        if not _left_behind(holder.base, holder.postmaster):
            break
        time.sleep(0.05)

    assert not holder.base.exists()
    assert _gone(holder.postmaster)
    assert _processes_mentioning(str(holder.base)) == []
