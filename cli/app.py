"""The whole ``provision`` command line: the root ``app`` with every command registered, and ``main``.

Importing this module registers the commands (each command module adds itself to
``root.app``); none of them imports its stack before it runs, so that ``--help`` and
``--version`` stay fast.  ``__main__`` imports this module under its Ctrl-C guard.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from agentic_loadkit.provisioning.generate.passwords import HASH_THREAD_PREFIX

from . import db, demo, down, platform, runs, up
from .root import app, err_console, fail, out_console

__all__ = ["app", "main"]

COMMAND_MODULES = (db, demo, down, platform, runs, up)
"""The modules whose import registered the commands on ``app``."""


def main() -> None:
    """Console-script entry point: every way out is one line and an exit code."""
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # keeps tracebacks off the terminal
        code = fail(exc).exit_code
    _leave(code)


def _leave(code: int) -> None:
    """Exit; without the interpreter's shutdown while a bcrypt thread is still inside a hash.
    At shutdown Python ends such a daemon thread with a forced unwind through bcrypt's native
    code, which aborts the process ('FATAL: exception not rethrown', exit 134) after the undo
    has already done its work."""
    for stream in (out_console.file, err_console.file):
        with contextlib.suppress(Exception):
            stream.flush()
    hashing = any(t.name.startswith(HASH_THREAD_PREFIX) and t.is_alive() for t in threading.enumerate())
    if hashing:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
