"""The ``provision`` command line: parse options, build settings, make one ``asyncio.run``
call into the importable async API, and map the toolkit's exceptions to exit codes and
one-line messages.  Nothing here does real work.

Command groups live beside this module (``cli_*.py``) and register on ``app``.
Exit codes are those of ``errors.py`` (listed in the README); 1 is an unexpected error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from typer.core import TyperGroup

from ._version import __version__
from .dburl import mask_text
from .errors import ProvisionError

__all__ = ["CliState", "app", "err_console", "main", "out_console", "run_async", "state"]

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
out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    debug: bool = False
    state_dir: Path | None = None


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
    state_dir: Path | None = typer.Option(
        None, "--state-dir", envvar="PROVISION_STATE_DIR",
        help="State directory (embedded database, credentials). Default: ./.provision",
    ),
) -> None:
    """Load-test data toolkit for the Agentic Platform."""
    _STATE.debug = debug
    _STATE.state_dir = state_dir


def fail(exc: BaseException) -> typer.Exit:
    """Report an error as one line on stderr (traceback with --debug) and return the Exit to raise."""
    if _STATE.debug:
        err_console.print("".join(traceback.format_exception(exc)), markup=False)
    if isinstance(exc, ProvisionError):
        err_console.print(f"error: {exc.message}", markup=False)
        return typer.Exit(exc.exit_code)
    if isinstance(exc, KeyboardInterrupt):
        err_console.print("error: interrupted.", markup=False)
        return typer.Exit(130)
    text = mask_text(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
    err_console.print(
        f"error: unexpected {type(exc).__name__}{': ' + text if text else ''} (run with --debug for the traceback).",
        markup=False,
    )
    return typer.Exit(1)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """The CLI's single ``asyncio.run`` call, with the exception-to-exit-code mapping."""
    if not _STATE.debug:
        # asyncio's own log lines (e.g. "socket.send() raised exception." for every write a COPY
        # makes after its connection was killed) would bury the one sentence; --debug keeps them
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        return asyncio.run(coro)
    except typer.Exit:
        raise
    except (ProvisionError, KeyboardInterrupt, Exception) as exc:
        raise fail(exc) from None


def guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a synchronous library call with the same error mapping as ``run_async``."""
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except (ProvisionError, KeyboardInterrupt, Exception) as exc:
        raise fail(exc) from None


def _register_commands() -> None:
    # imported for their side effect of adding commands to ``app``
    from . import (
        cli_db,  # noqa: F401
        cli_platform,  # noqa: F401
    )

    for optional in ("cli_up", "cli_down", "cli_demo"):
        try:
            __import__(f"{__package__}.{optional}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{optional}":
                raise


def main() -> None:
    """Console-script entry point."""
    _register_commands()
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # pragma: no cover - last resort, keeps tracebacks off the terminal
        raise SystemExit(fail(exc).exit_code) from None


_ = sys
