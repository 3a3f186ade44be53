"""Start a command that ends when the process that started it dies, even by SIGKILL.

``python -m agentic_loadkit.demo.parent_death PARENT_PID -- COMMAND ...`` asks the
Linux kernel to send the process SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
kept across ``exec``), checks that the parent is still the one that started it (it may
have died in between), and then replaces itself with ``COMMAND``: no extra process stays
in the tree.  Why not ``preexec_fn``: it runs between ``fork`` and ``exec`` of a process
with threads, where Python warns that locks may deadlock; this wrapper is a fresh
single-threaded interpreter.

Elsewhere than Linux the command is started without the guard (the caller's own cleanup
still stops it whenever the caller lives to run it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["PR_SET_PDEATHSIG", "dying_with_parent", "main"]

PR_SET_PDEATHSIG = 1
_MODULE = "agentic_loadkit.demo.parent_death"


def dying_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so that it gets SIGTERM when this process dies (Linux); ``argv`` itself elsewhere."""
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-m", _MODULE, str(os.getpid()), "--", *argv]


def main(args: list[str]) -> int:
    if len(args) < 3 or args[1] != "--" or not args[0].isdigit():
        sys.stderr.write("usage: python -m agentic_loadkit.demo.parent_death PARENT_PID -- COMMAND ...\n")
        return 2
    parent, command = int(args[0]), args[2:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        sys.stderr.write(f"warning: prctl(PR_SET_PDEATHSIG) failed (errno {ctypes.get_errno()}).\n")
    if os.getppid() != parent:
        return 0  # the parent died before the guard was set: there is nobody left to run for
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
