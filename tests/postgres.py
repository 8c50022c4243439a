"""A throwaway PostgreSQL cluster for tests: find, initdb, start, stop, remove.

The pytest fixtures in ``tests/conftest.py`` are thin wrappers around
:func:`running_cluster`; this module holds the machinery so that it can be
unit-tested and reused by a script.

- The server binaries come from ``/usr/lib/postgresql/15/bin``, else from
  ``pg_config --bindir``, else from ``PATH``, else from the newest
  ``/usr/lib/postgresql/*/bin``.
- The cluster lives in a fresh directory in ``/dev/shm`` when that tmpfs has
  room (CREATE DATABASE there takes ~15 ms instead of ~250 ms on this
  machine's ext4, fsync or not), else under the system temp dir. PostgreSQL
  refuses to run as root, so a root test run initdb's and starts it as the
  ``postgres`` system user (``runuser``, else ``setpriv``) and hands that user
  the directory; anyone else runs it as themselves.
- It listens on 127.0.0.1 only, on a free port, with its unix socket in the
  same directory; durability is off (``fsync``, ``synchronous_commit``,
  ``full_page_writes``) because the data dies with the test run.
- A watchdog process, in its own session, stops the server and removes the
  directory if the test process dies without cleaning up (SIGKILL, SIGTERM, a
  crash): the pipe it reads from closes when its parent goes away.

When PostgreSQL cannot be started, :class:`PostgresUnavailableError` says why;
:func:`report_unavailable` turns that into a skip locally and a failure in CI.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, NoReturn

import attrs
import pytest

from statemachines.errors import StatepollError

if TYPE_CHECKING:
    # Imported where used at run time: without psycopg this module must still
    # load, so that the fixtures can say "skip: psycopg is not installed".
    from psycopg import sql

__all__ = [
    "HOST",
    "SUPERUSER",
    "PostgresCluster",
    "PostgresUnavailableError",
    "ci_requires_postgres",
    "cluster_parent",
    "command_prefix",
    "database_name",
    "find_bindir",
    "report_unavailable",
    "running_cluster",
    "server_user",
    "stop_server",
    "unavailable_outcome",
]

#: The only address the cluster listens on.
HOST: Final = "127.0.0.1"
#: The cluster's superuser, whoever runs the server process; a fixed name keeps
#: the URLs the same on a laptop and on a root CI machine.
SUPERUSER: Final = "statepoll"
#: Where Debian and Ubuntu put PostgreSQL 15, the version these machines carry.
PREFERRED_BINDIR: Final = Path("/usr/lib/postgresql/15/bin")
VERSIONS_ROOT: Final = Path("/usr/lib/postgresql")
#: The binaries a cluster needs; a directory missing one of them is not used.
SERVER_BINARIES: Final = ("initdb", "pg_ctl", "postgres")
#: Memory-backed directories tried for the cluster before the temp dir, and the
#: room one must have free (Docker's default /dev/shm of 64 MB is too small).
FAST_PARENTS: Final = (Path("/dev/shm"),)  # noqa: S108 - only a parent for mkdtemp
FAST_PARENT_MIN_FREE: Final = 1 << 30
#: The system user a root test run hands the cluster to.
SERVICE_USER: Final = "postgres"
#: Seconds ``pg_ctl`` waits for the server to accept connections or to stop.
PG_CTL_WAIT: Final = 30
# A subprocess gets this much longer than pg_ctl's own wait before we give up on it.
_SLACK: Final = 30
# A free port can be taken between our probe and the server's bind; try again.
_START_ATTEMPTS: Final = 3
# The last lines of a log that go into an error message.
_LOG_TAIL: Final = 15
# Values of CI that mean "not CI" (some tools export CI=false to opt out).
_NOT_CI: Final = frozenset({"", "0", "false", "no"})
# The repository root: the watchdog runs as ``python -m tests.postgres`` from it.
_ROOT: Final = Path(__file__).resolve().parent.parent
_DBNAME_UNSAFE: Final = re.compile(r"[^a-z0-9_]+")
_MAX_IDENTIFIER: Final = 63


class PostgresUnavailableError(StatepollError, RuntimeError):
    """PostgreSQL cannot be started here; ``reason`` says what is missing or failed."""

    def __init__(self, reason: str) -> None:
        """Keep ``reason`` as an attribute as well as the message."""
        super().__init__(reason)
        self.reason = reason


# -- skip or fail ----------------------------------------------------------------------


def ci_requires_postgres(environ: Mapping[str, str]) -> bool:
    """Return whether ``CI`` is set to something other than an opt-out (``0``, ``false``)."""
    return environ.get("CI", "").strip().lower() not in _NOT_CI


def unavailable_outcome(environ: Mapping[str, str]) -> Literal["skip", "fail"]:
    """Decide what a missing PostgreSQL does to a ``postgres`` test: fail in CI, else skip."""
    return "fail" if ci_requires_postgres(environ) else "skip"


def report_unavailable(
    error: PostgresUnavailableError, environ: Mapping[str, str]
) -> NoReturn:
    """Skip the requesting test with ``error``'s reason, or fail it when CI is set."""
    if unavailable_outcome(environ) == "fail":
        msg = f"PostgreSQL is required when CI is set, and it cannot start: {error.reason}"
        pytest.fail(msg, pytrace=False)
    msg = f"PostgreSQL unavailable: {error.reason} (with CI set this fails)"
    pytest.skip(msg)


# -- where the binaries are and who runs them ------------------------------------------


def _has_server_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in SERVER_BINARIES)


def _pg_config_bindir(search_path: str) -> Path | None:
    pg_config = shutil.which("pg_config", path=search_path)
    if pg_config is None:
        return None
    try:
        done = subprocess.run(
            [pg_config, "--bindir"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(done.stdout.strip())


def _newest_versions(root: Path) -> list[Path]:
    # /usr/lib/postgresql/{13,15,16}/bin: the newest first, by number not by text.
    found = [p / "bin" for p in root.glob("*") if p.name.isdigit()]
    return sorted(found, key=lambda p: int(p.parent.name), reverse=True)


def find_bindir(
    *,
    preferred: Sequence[Path] = (PREFERRED_BINDIR,),
    search_path: str | None = None,
    versions_root: Path = VERSIONS_ROOT,
) -> Path:
    """Return the first directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    The order is ``preferred``, ``pg_config --bindir``, the directory of an
    ``initdb`` on ``search_path`` (``PATH`` by default), then the newest
    ``versions_root/*/bin``.

    Raises:
        PostgresUnavailableError: none of them has the three binaries; the
            message lists every place looked at.
    """
    path = os.environ.get("PATH", os.defpath) if search_path is None else search_path
    looked: list[str] = []
    for directory in preferred:
        if _has_server_binaries(directory):
            return directory
        looked.append(str(directory))
    from_pg_config = _pg_config_bindir(path)
    if from_pg_config is not None and _has_server_binaries(from_pg_config):
        return from_pg_config
    looked.append(f"pg_config --bindir ({from_pg_config or 'no pg_config on PATH'})")
    initdb = shutil.which("initdb", path=path)
    if initdb is not None and _has_server_binaries(Path(initdb).parent):
        return Path(initdb).parent
    looked.append("PATH")
    for directory in _newest_versions(versions_root):
        if _has_server_binaries(directory):
            return directory
    looked.append(f"{versions_root}/*/bin")
    missing = ", ".join(SERVER_BINARIES)
    msg = (
        f"PostgreSQL server binaries ({missing}) not found in {'; '.join(looked)}; "
        "install them with `apt-get install -y postgresql`"
    )
    raise PostgresUnavailableError(msg)


def server_user(
    euid: int, lookup: Callable[[str], pwd.struct_passwd] = pwd.getpwnam
) -> pwd.struct_passwd | None:
    """Return the account the server must run as, or None to run it as ourselves.

    PostgreSQL refuses to run as root, so root hands the cluster to the
    ``postgres`` system user.

    Raises:
        PostgresUnavailableError: running as root and there is no such user.
    """
    if euid != 0:
        return None
    try:
        return lookup(SERVICE_USER)
    except KeyError as exc:
        msg = (
            f"running as root, and there is no {SERVICE_USER!r} user to run the server "
            "as (PostgreSQL refuses root)"
        )
        raise PostgresUnavailableError(msg) from exc


def command_prefix(
    user: str | None, which: Callable[[str], str | None] = shutil.which
) -> tuple[str, ...]:
    """Return the argv prefix that runs a command as ``user`` (empty for ourselves).

    Raises:
        PostgresUnavailableError: neither ``runuser`` nor ``setpriv`` exists.
    """
    if user is None:
        return ()
    runuser = which("runuser")
    if runuser is not None:
        return (runuser, "-u", user, "--")
    setpriv = which("setpriv")
    if setpriv is not None:
        return (setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--")
    msg = f"running as root, and neither runuser nor setpriv exists to run the server as {user!r}"
    raise PostgresUnavailableError(msg)


# -- the cluster -----------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PostgresCluster:
    """A running throwaway cluster: where it lives, how to reach it, how long it took."""

    base: Path
    bindir: Path
    port: int
    #: The argv prefix that runs a command as the server's owner.
    run_as: tuple[str, ...]
    #: The PID in the data directory's postmaster.pid once the server was up.
    postmaster_pid: int
    #: Seconds from the empty directory to a server accepting connections.
    started_in: float
    user: str = SUPERUSER
    host: str = HOST

    @property
    def datadir(self) -> Path:
        """The data directory (``initdb -D``)."""
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        """The directory holding the server's unix socket."""
        return self.base / "sock"

    @property
    def log_file(self) -> Path:
        """The server's log (``pg_ctl -l``)."""
        return self.base / "server.log"

    def url(self, dbname: str) -> str:
        """Return ``postgresql://USER@127.0.0.1:PORT/DBNAME`` for a database of this cluster."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` from ``template0`` and return its URL."""
        from psycopg import sql

        self._admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(name)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name``, ending any session a test left on it."""
        from psycopg import sql

        # FORCE: a test that failed half-way may still hold a connection.
        self._admin(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )

    def _admin(self, statement: sql.Composed) -> None:
        import psycopg

        # CREATE/DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(
            self.url("postgres"), autocommit=True, connect_timeout=10
        ) as conn:
            conn.execute(statement)


def database_name(label: str, number: int) -> str:
    """Return a valid, unique database name ``t<number>_<label>`` (lowercased, cut to 63)."""
    prefix = f"t{number}_"
    cleaned = _DBNAME_UNSAFE.sub("_", label.lower()).strip("_")
    return (prefix + cleaned)[:_MAX_IDENTIFIER]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _child_env() -> dict[str, str]:
    # PGDATA, PGPORT, PGHOST… from the caller's shell must not steer our server;
    # C messages keep error texts (and our reports) in one language.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL:])


def _run(argv: Sequence[str], *, cwd: Path, what: str) -> None:
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=_child_env(),
            capture_output=True,
            text=True,
            timeout=PG_CTL_WAIT + _SLACK,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"{what} did not run: {exc}"
        raise PostgresUnavailableError(msg) from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        msg = f"{what} failed (exit {done.returncode}): {output}"
        raise PostgresUnavailableError(msg)


def _configure(datadir: Path, socket_dir: Path) -> None:
    # Appended, so these win over initdb's defaults earlier in the file.
    settings = {
        "listen_addresses": f"'{HOST}'",
        "unix_socket_directories": f"'{socket_dir}'",
        # Throwaway data: speed over durability.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        # Checkpoints are cheap without fsync; this bounds the WAL kept in memory.
        "max_wal_size": "'256MB'",
        "timezone": "'UTC'",
    }
    with (datadir / "postgresql.conf").open("a") as conf:
        conf.write("\n# tests/postgres.py\n")
        conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
    # Trust, but only on the socket in our private directory and on 127.0.0.1.
    (datadir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n"
    )


def _postmaster_pid(datadir: Path) -> int | None:
    try:
        first = (datadir / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return None
    return int(first) if first.strip().isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pg_ctl_start(base: Path, bindir: Path, run_as: tuple[str, ...]) -> int:
    datadir, log_file = base / "data", base / "server.log"
    attempt = 1
    while True:
        port = _free_port()
        try:
            _run(
                [
                    *run_as,
                    str(bindir / "pg_ctl"),
                    "start",
                    "--wait",
                    f"--timeout={PG_CTL_WAIT}",
                    f"--pgdata={datadir}",
                    f"--log={log_file}",
                    f"--options=-p {port}",
                ],
                cwd=base,
                what="pg_ctl start",
            )
        except PostgresUnavailableError as exc:
            if "could not bind" in _tail(log_file) and attempt < _START_ATTEMPTS:
                attempt += 1
                continue
            msg = f"{exc.reason}\n--- {log_file} ---\n{_tail(log_file)}"
            raise PostgresUnavailableError(msg) from exc
        return port


def stop_server(base: Path, bindir: Path, run_as: tuple[str, ...]) -> None:
    """Stop the server whose data directory is ``base/data``, if it runs; never raises.

    ``pg_ctl stop -m immediate`` signals only the PID in that directory's
    postmaster.pid, so this cannot touch another cluster. If that process
    outlives pg_ctl's wait, it gets SIGKILL by the same PID.
    """
    datadir = base / "data"
    pid = _postmaster_pid(datadir)
    if pid is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "stop",
                "--wait",
                f"--timeout={PG_CTL_WAIT}",
                "--mode=immediate",
                f"--pgdata={datadir}",
            ],
            cwd=base,
            env=_child_env(),
            capture_output=True,
            timeout=PG_CTL_WAIT + _SLACK,
            check=False,
        )
    if _alive(pid) and _postmaster_pid(datadir) == pid:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def cluster_parent(
    candidates: Sequence[Path] = FAST_PARENTS, min_free: int = FAST_PARENT_MIN_FREE
) -> Path | None:
    """Return the first of ``candidates`` that is writable with ``min_free`` bytes free.

    None means the system temp dir. PostgreSQL keeps its dynamic shared memory
    in /dev/shm too, so a small one is left to it.
    """
    for directory in candidates:
        try:
            stats = os.statvfs(directory)
        except OSError:
            continue
        if (
            os.access(directory, os.W_OK | os.X_OK)
            and stats.f_bavail * stats.f_frsize >= min_free
        ):
            return directory
    return None


def _make_base(parent: Path | None, owner: pwd.struct_passwd | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix="statepoll-pg-", dir=parent))
    (base / "sock").mkdir()
    if owner is not None:
        for path in (base, base / "sock"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    return base


def _start_watchdog(
    base: Path, bindir: Path, run_as: tuple[str, ...]
) -> subprocess.Popen[bytes]:
    # Its own session: a Ctrl-C or a kill of the test's process group must not
    # take the watchdog down with the tests it is there to clean up after.
    return subprocess.Popen(
        [sys.executable, "-m", "tests.postgres", str(base), str(bindir), *run_as],
        stdin=subprocess.PIPE,
        # Not the test run's stdout/stderr: a caller waiting for their EOF (a
        # pipe to tee, pytest's capture) must not wait on the watchdog too.
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=_ROOT,
        start_new_session=True,
    )


@contextlib.contextmanager
def running_cluster(
    *, bindir: Path | None = None, parent: Path | None = None
) -> Iterator[PostgresCluster]:
    """Initdb and start a throwaway cluster; stop it and remove its directory on exit.

    Args:
        bindir: where ``initdb``, ``pg_ctl`` and ``postgres`` are; found by
            :func:`find_bindir` when None.
        parent: the directory to create the cluster's directory in; by
            default :func:`cluster_parent`'s choice. The server's user must be
            able to reach it.

    Raises:
        PostgresUnavailableError: the binaries, the service user or psycopg
            are missing, or initdb or the server failed; nothing is left behind.
    """
    started = time.perf_counter()
    try:
        import psycopg  # noqa: F401 - only to report its absence here, with the others
    except ImportError as exc:
        msg = "psycopg is not installed: pip install -e '.[postgres]'"
        raise PostgresUnavailableError(msg) from exc
    bindir = find_bindir() if bindir is None else bindir
    owner = server_user(os.geteuid())
    run_as = command_prefix(None if owner is None else owner.pw_name)
    base = _make_base(cluster_parent() if parent is None else parent, owner)
    watchdog = _start_watchdog(base, bindir, run_as)
    try:
        _run(
            [
                *run_as,
                str(bindir / "initdb"),
                f"--pgdata={base / 'data'}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=base,
            what="initdb",
        )
        _configure(base / "data", base / "sock")
        port = _pg_ctl_start(base, bindir, run_as)
        pid = _postmaster_pid(base / "data")
        if pid is None:  # pg_ctl --wait read this file, so only a race gets here
            msg = (
                f"pg_ctl start succeeded, yet {base}/data/postmaster.pid is unreadable"
            )
            raise PostgresUnavailableError(msg)
        yield PostgresCluster(
            base=base,
            bindir=bindir,
            port=port,
            run_as=run_as,
            postmaster_pid=pid,
            started_in=time.perf_counter() - started,
        )
    finally:
        stop_server(base, bindir, run_as)
        shutil.rmtree(base, ignore_errors=True)
        _stop_watchdog(watchdog)


def _stop_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    # Closing its stdin is the all-clear: the directory is gone, so it exits.
    assert watchdog.stdin is not None
    watchdog.stdin.close()
    try:
        watchdog.wait(timeout=_SLACK)
    except subprocess.TimeoutExpired:
        # Not expected (it only finds the directory gone), but never leave it running.
        watchdog.kill()
        watchdog.wait()


def _watch(argv: Sequence[str]) -> int:
    """Wait until the parent closes our stdin or dies, then stop and remove its cluster."""
    base, bindir, *run_as = argv
    # Terminal signals are not ours to act on; the pipe is the only trigger.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    stop_server(Path(base), Path(bindir), tuple(run_as))
    shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(_watch(sys.argv[1:]))
