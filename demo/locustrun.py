"""The demo's Locust run: where the scenarios live, the profile it will run, the subprocess
(its own process group, a hard timeout, stopped as a whole, and sent SIGTERM by the kernel
if the demo dies without its cleanup, see ``parent_death``), and its last error line.

Locust monkey-patches the interpreter with gevent when imported, which would break the
demo's asyncio; so Locust only ever runs in a subprocess, and the scenarios modules the
demo needs in its own process (``shapes`` for the profile's length and peak users,
``gate`` to show the verdict) are imported with the patch switched off
(``import_scenarios_module``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agentic_loadkit.provisioning.api import mask_text
from agentic_loadkit.provisioning.errors import InputError, LoadTestFailed

from .parent_death import dying_with_parent

__all__ = [
    "RESERVED_LOCUST_OPTIONS",
    "LocustRun",
    "check_locust_args",
    "import_scenarios_module",
    "last_error_line",
    "locustfile_path",
    "resolve_demo_profile",
]

STOP_SECONDS = 15.0  # SIGTERM, then SIGKILL
RESERVED_LOCUST_OPTIONS = (
    "-f", "--locustfile", "-H", "--host", "--headless", "--autostart", "--credentials", "--state-dir",
    "--load-profile", "--time-scale", "--results-json", "--html", "--master", "--worker", "--processes",
    "--config", "-u", "--users", "-r", "--spawn-rate",
)
"""Options the demo sets itself; passing them through to Locust is refused."""


def locustfile_path() -> Path:
    """The scenarios' locustfile inside the installed package (editable or wheel install)."""
    package = importlib.import_module("agentic_loadkit.scenarios")  # does not import Locust
    return Path(package.__file__ or "").resolve().parent / "locustfile.py"


def import_scenarios_module(name: str) -> ModuleType:
    """``agentic_loadkit.scenarios.<name>``, importing Locust (if it is not yet) without its
    gevent monkey-patching, which would break the demo's asyncio."""
    if "locust" not in sys.modules:
        previous = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
        os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
        try:
            importlib.import_module("locust")
        finally:
            if previous is None:
                os.environ.pop("LOCUST_SKIP_MONKEY_PATCH", None)
            else:
                os.environ["LOCUST_SKIP_MONKEY_PATCH"] = previous
    return importlib.import_module(f"agentic_loadkit.scenarios.{name}")


def resolve_demo_profile(name: str, time_scale: float, users: int | None, spawn_rate: float | None) -> Any:
    """The load profile exactly as the scenarios will run it (``shapes.resolve_profile``)."""
    shapes = import_scenarios_module("shapes")
    return shapes.resolve_profile(name, time_scale=time_scale, users=users, spawn_rate=spawn_rate)


def check_locust_args(args: tuple[str, ...]) -> None:
    for arg in args:
        name = arg.split("=", 1)[0]
        if name in RESERVED_LOCUST_OPTIONS:
            raise InputError(f"The demo sets {name} itself; use the demo's own option instead.")


@dataclass
class LocustRun:
    """One headless Locust subprocess writing ``log``; ``stop`` ends its whole process group."""

    argv: list[str]
    cwd: Path
    log: Path
    proc: asyncio.subprocess.Process | None = None

    @staticmethod
    def environment() -> dict[str, str]:
        """This environment without Locust's and the scenarios' variables: the demo's options rule."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "LOADKIT_"))}
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def start(self) -> int:
        with self.log.open("wb") as out:  # the child keeps its own descriptor
            self.proc = await asyncio.create_subprocess_exec(
                *dying_with_parent(self.argv),  # ends with the demo, even a SIGKILLed one
                cwd=str(self.cwd),  # cwd: no locust.conf or pyproject.toml of the caller's
                env=self.environment(), stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole, spared the terminal's ^C
            )
        return self.proc.pid

    async def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.stop()
            raise LoadTestFailed(
                f"Locust did not finish within {timeout:.0f} s and was stopped; its log is {self.log}."
            ) from None

    async def stop(self) -> None:
        """SIGTERM to the process group (Locust shuts down gracefully), SIGKILL after a while."""
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 10.0)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
                try:
                    await asyncio.wait_for(proc.wait(), wait)
                    break
                except TimeoutError:
                    continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever Locust left behind in its group

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def last_error_line(text: str) -> str:
    """The most telling line of a failed run's output: its 'error:' line, else its last ERROR."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return mask_text(line.removeprefix("error:").strip().rstrip("."))[:300]
    for line in reversed(lines):
        if "/ERROR/" in line or "/CRITICAL/" in line:
            return mask_text(line.split(": ", 1)[-1].rstrip("."))[:300]
    return mask_text(lines[-1].rstrip("."))[:300] if lines else "no output"
