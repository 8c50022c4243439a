"""The ``statepoll`` command (also ``python -m engine``).

``main(argv, stdout=, stderr=) -> int`` runs in-process (the tests call it);
the exit codes live in :data:`EXIT` (DESIGN's table) and nowhere else. The
parts: ``_parser`` (the verbs and their options), ``_checks`` (what is checked
before any request is sent), ``_commands`` (one function per verb) and
``_jobs`` (those that drive jobs: run, track, resume), ``_progress`` (console
lines) and ``_demo``.

Whatever goes wrong is one line on stderr and an exit code, never a traceback:
a usage or spec mistake exits 2, Ctrl-C exits 130.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from typing import Final, TextIO

from statemachines import SpecError, StatepollError

from ._commands import (
    Command,
    ExitName,
    cmd_audit,
    cmd_demo,
    cmd_diagram,
    cmd_simulate,
    cmd_specs,
    cmd_validate,
)
from ._import import cmd_import
from ._jobs import cmd_resume, cmd_run
from ._parser import build_parser
from ._workers import cmd_enqueue, cmd_worker

__all__ = ["EXIT", "console_main", "main"]

#: Exit codes (DESIGN's command-line contract).
EXIT: Final[Mapping[ExitName, int]] = {
    "ok": 0,
    "outcome": 1,  # validate: invalid; run/track: a terminal state other than success; verify: tampered
    "usage": 2,  # bad arguments, unknown or broken spec, a file that is not what it should be; verify: cannot check
    "timeout": 3,  # the job's own deadline, or run --timeout (the job goes on)
    "remote": 4,  # transport or protocol error
    "interrupted": 130,  # Ctrl-C (128 + SIGINT, as shells report it)
}

#: Verb → its command.
_COMMANDS: Final[Mapping[str, Command]] = {
    "audit": cmd_audit,
    "demo": cmd_demo,
    "diagram": cmd_diagram,
    "enqueue": cmd_enqueue,
    "import": cmd_import,
    "resume": cmd_resume,
    "run": cmd_run,
    "simulate": cmd_simulate,
    "specs": cmd_specs,
    "track": cmd_run,
    "validate": cmd_validate,
    "worker": cmd_worker,
}


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command line; return the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    try:
        return EXIT[_dispatch(argv, out, err)]
    except KeyboardInterrupt:
        # Commands that leave jobs behind say where (run, resume, demo); this
        # is Ctrl-C anywhere else (loading a spec, say).
        print("statepoll: interrupted", file=err)
        return EXIT["interrupted"]


def _dispatch(argv: Sequence[str] | None, out: TextIO, err: TextIO) -> ExitName:
    try:
        # argparse prints help and errors on sys.stdout / sys.stderr.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return "ok" if exc.code in (0, None) else "usage"
    try:
        return _COMMANDS[args.command](args, out, err)
    except BrokenPipeError:
        raise  # the reader went away: console_main handles it
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=err)
    except StatepollError as exc:
        print(f"statepoll: {exc}", file=err)
    except OSError as exc:
        # A file named on the command line that cannot be read or written.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"statepoll: {where}{exc.strerror or exc}", file=err)
    except sqlite3.Error as exc:
        # An audit log or store that passed the checks and still cannot be
        # read (locked, damaged).
        print(f"statepoll: SQLite: {exc}", file=err)
    return "usage"


def console_main() -> None:
    """Entry point of the ``statepoll`` script."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`statepoll run … | head`): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EXIT["ok"]
    sys.exit(code)
