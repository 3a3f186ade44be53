"""Waiting until a condition holds, for tests that watch another process or a server.

One loop for every test: it polls at a fixed interval instead of sleeping a guessed
time, returns the condition's value as soon as it is truthy, and fails with a sentence
that names what was awaited (or the watched process's output, when that process ended
first, since then the condition can never hold).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    *,
    what: str = "the condition held",
    proc: subprocess.Popen[Any] | None = None,
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value, and return that value.

    Raises AssertionError when ``timeout`` seconds pass first, or when ``proc`` (if given)
    ends before the predicate holds.
    """
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"the process ended ({proc.returncode}) before {what}: {_tail(out)} {_tail(err)}"
            )
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting until {what}")
        time.sleep(interval)


def _tail(stream: str | bytes | None) -> str:
    if stream is None:
        return ""
    text = stream.decode(errors="replace") if isinstance(stream, bytes) else stream
    return text[-1500:]
