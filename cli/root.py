"""The root of the ``provision`` command line: the typer ``app`` every command registers on,
the consoles, the state the root options set, and the mapping of the toolkit's exceptions
to exit codes and one-line messages (``run_async``, ``guard``).  Nothing here does real work.

The commands live beside this module (``up``, ``runs``, ``down``, ``db``, ``platform``,
``demo``); ``app.py`` imports them all, so that ``agentic_loadkit.cli.app.app`` is the
whole command line.  Exit codes are those of ``provisioning.errors`` (listed in the README);
1 is an unexpected error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from agentic_loadkit.provisioning._version import __version__
from agentic_loadkit.provisioning.errors import Interrupted, ProvisionError, first_line
from agentic_loadkit.provisioning.target.url import mask_text
from rich.console import Console
from typer.core import TyperGroup

from .options import state_dir_option

__all__ = ["CliState", "app", "err_console", "fail", "guard", "out_console", "print_json", "run_async", "state"]

T = TypeVar("T")

try:  # typer ≥ 0.22 vendors click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as _click_errors  # type: ignore[no-redef]


class _OneLineUsageErrors(TyperGroup):
    """Usage errors (a bad option value, an unknown option) as one ``error:`` line and exit 2,
    like every other error of the toolkit, instead of click's usage text and boxed message."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        try:
            outcome = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
        except _click_errors.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except _click_errors.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} -h')" if exc.ctx is not None else ""
            err_console.print(f"error: {exc.format_message().rstrip('.')}{where}.", markup=False)
            sys.exit(exc.exit_code)
        except _click_errors.ClickException as exc:
            err_console.print(f"error: {exc.format_message()}", markup=False)
            sys.exit(exc.exit_code)
        except typer.Abort:
            err_console.print("error: interrupted.", markup=False)
            sys.exit(130)
        if outcome == 130 and not _STATE.reported:
            # typer turns a Ctrl-C outside our handlers (a command's lazy imports) into a silent Exit(130)
            err_console.print("error: interrupted.", markup=False)
        sys.exit(outcome if isinstance(outcome, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    name="provision",
    help="Load-test data toolkit for the Agentic Platform: provision, load-test, tear down.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
class _PipeSafe:
    """``sys.stdout``/``sys.stderr`` (looked up at each write, as test runners swap them) that
    survives a closed reader: ``provision down | head -1`` must finish the teardown, not die
    of EPIPE in the middle of it.  After the first broken pipe the stream goes to /dev/null."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._broken = False

    def _stream(self) -> Any:
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                return int(self._stream().write(text))
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream().flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self._broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream().fileno())  # so the interpreter's last flush cannot fail either
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream(), name)


out_console = Console(file=_PipeSafe("stdout"), highlight=False, soft_wrap=True)  # type: ignore[arg-type]
err_console = Console(file=_PipeSafe("stderr"), highlight=False, soft_wrap=True)  # type: ignore[arg-type]


@dataclass
class CliState:
    debug: bool = False
    state_dir: Path | None = None
    reported: bool = False  # an error line was printed


_STATE = CliState()


def state() -> CliState:
    return _STATE


def _version_callback(value: bool) -> None:
    if value:
        out_console.print(f"provision {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                 help="Print the toolkit's version and exit."),
    debug: bool = typer.Option(False, "--debug", envvar="PROVISION_DEBUG",
                               help="Show tracebacks instead of one-line errors."),
    state_dir: Path | None = state_dir_option(),
) -> None:
    """Load-test data toolkit for the Agentic Platform."""
    _STATE.debug = debug
    _STATE.state_dir = state_dir


def fail(exc: BaseException) -> typer.Exit:
    """Report an error as one line on stderr (traceback with --debug) and return the Exit to raise."""
    _STATE.reported = True
    if _STATE.debug:
        err_console.print("".join(traceback.format_exception(exc)), markup=False)
    if isinstance(exc, ProvisionError):
        err_console.print(f"error: {exc.message}", markup=False)
        return typer.Exit(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        err_console.print("error: interrupted.", markup=False)
        return typer.Exit(130)
    text = mask_text(first_line(exc)) if str(exc).strip() else ""
    err_console.print(
        f"error: unexpected {type(exc).__name__}{': ' + text if text else ''} (run with --debug for the traceback).",
        markup=False,
    )
    return typer.Exit(1)


def print_json(data: Any) -> None:
    """A command's ``--json`` document on stdout (written as is: rich would wrap and colour it)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The CLI's single ``asyncio.run`` call, with the exception-to-exit-code mapping."""
    import asyncio  # here, not at the top: ``--help`` and ``--version`` need no event loop

    if not _STATE.debug:
        # asyncio's own log lines (e.g. "socket.send() raised exception." for every write a COPY
        # makes after its connection was killed) would bury the one sentence; --debug keeps them
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(_terminable(coro))
    except typer.Exit:
        raise
    except (ProvisionError, KeyboardInterrupt, Exception) as exc:
        raise fail(exc) from None


async def _terminable(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` with SIGTERM handled like Ctrl-C: the main task is cancelled, so the command
    undoes what it started (an ``up`` rolls its run back and removes its passwords file) and
    reports ``Interrupted`` (exit 130)."""
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    installed = False
    if task is not None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            installed = True
    try:
        return await coro
    except asyncio.CancelledError:
        raise Interrupted("Interrupted (Ctrl-C or SIGTERM).") from None
    finally:
        if installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGTERM)


def guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a synchronous library call with the same error mapping as ``run_async``."""
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except (ProvisionError, KeyboardInterrupt, Exception) as exc:
        raise fail(exc) from None
