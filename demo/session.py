"""One demo in progress (``DemoSession``): its checked inputs, what it has started so far, its
progress events, and the signals that cancel it.

The record of what was started is what lets the cleanup stop exactly that and nothing
else; the phases (``phases.py``) fill it in as they go.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from agentic_loadkit.provisioning.api import (
    DatabaseTarget,
    DownResult,
    ResolvedDatabase,
    UpResult,
    UpSettings,
    prepare_run,
)
from agentic_loadkit.provisioning.errors import InputError, LoadTestFailed
from agentic_loadkit.provisioning.progress import ProgressCallback, ProgressEvent

from .locustrun import LocustRun, check_locust_args, locustfile_path, resolve_demo_profile
from .settings import DEMO_PHASES, DemoSettings

__all__ = ["DemoSession"]

T = TypeVar("T")


class DemoSession:
    """What one demo was given and what it started (see the module docstring)."""

    def __init__(self, settings: DemoSettings, progress: ProgressCallback) -> None:
        self.settings, self.progress = settings, progress
        # every input is checked here, before anything is touched
        self.up_settings = UpSettings(
            scale=settings.scale, overrides=settings.overrides, seed=settings.seed,
            bcrypt_cost=settings.bcrypt_cost, label="provision demo", state_dir=settings.state_dir,
        )
        self.prep = prepare_run(self.up_settings)
        self.profile = resolve_demo_profile(
            settings.load_profile, settings.time_scale, settings.users, settings.spawn_rate
        )
        check_locust_args(settings.locust_args)
        if settings.load_timeout is not None and not settings.load_timeout > 0:
            raise InputError(f"The load timeout must be positive, not {settings.load_timeout}.")
        self.locustfile = locustfile_path()
        if not self.locustfile.is_file():
            raise LoadTestFailed(f"The installed package lacks the scenarios' locustfile {self.locustfile}.")
        self.state_dir = self.prep.state_dir
        self.out_dir = Path(settings.out_dir) if settings.out_dir is not None else self.state_dir / "demo"
        self.executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="provision-demo")
        self.pending: list[concurrent.futures.Future[Any]] = []
        self.phase, self.failed_in = "", ""  # the phase running now / when the demo failed
        self.phases: dict[str, float] = {}
        self.notes: list[str] = []
        self.interrupted: str | None = None  # the signal's name, once one came
        self.cleaning = False
        self.db: ResolvedDatabase | None = None
        self.target: DatabaseTarget | None = None  # the database the platform lives in
        self.owns_embedded = self.embedded_stopped = self.schema_created = False
        self.platform: Any = None  # PlatformProcess
        self.platform_url = ""
        self.run_id: str | None = None
        self.up: UpResult | None = None
        self.locust: LocustRun | None = None
        self.down: DownResult | None = None
        self.down_tried = False
        self.rows_left = 0

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.json"

    @property
    def html_path(self) -> Path:
        return self.out_dir / "report.html"

    @property
    def log_path(self) -> Path:
        return self.out_dir / "locust.log"

    @property
    def rows_removed(self) -> int:
        return sum(r.total_rows for r in self.down.runs) if self.down is not None else 0

    # -- progress --------------------------------------------------------------------------------
    def begin(self, name: str, detail: str) -> None:
        self.phase = name
        self.phases.setdefault(name, -time.monotonic())
        data: dict[str, Any] = {"demo": True, "step": DEMO_PHASES.index(name) + 1, "steps": len(DEMO_PHASES)}
        if name == "load":
            data["seconds"] = self.profile.duration_s
        self.progress(ProgressEvent("phase", name=name, message=detail, data=data))

    def end(self, name: str) -> None:
        if self.phases.get(name, 0) < 0:
            self.phases[name] += time.monotonic()

    def info(self, message: str, **data: Any) -> None:
        self.progress(ProgressEvent("info", message=message, data={"demo": True, **data}))

    def inner(self, event: ProgressEvent) -> None:
        """Progress of ``up``/``down``, passed on with the demo's phase attached."""
        if self.run_id is None and isinstance(event.data.get("run_id"), str):
            self.run_id = event.data["run_id"]  # known before up records the run
        self.progress(replace(event, data={**event.data, "demo_phase": self.phase}))

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call in a thread; if we are interrupted, the cleanup waits for it."""
        future = self.executor.submit(fn, *args)
        self.pending.append(future)
        return await asyncio.wrap_future(future)

    # -- signals ---------------------------------------------------------------------------------
    def on_signal(self, signum: int, task: asyncio.Task[Any]) -> None:
        name = signal.Signals(signum).name
        if self.interrupted is not None:
            self.progress(ProgressEvent("warning", message=f"{name} again: still cleaning up, please wait."))
            return
        self.interrupted = name
        self.progress(ProgressEvent("warning", message=(
            f"{name}: stopping; the run is torn down and everything the demo started is stopped first.")))
        if not self.cleaning:
            task.cancel()

    @contextlib.contextmanager
    def signals(self, enabled: bool) -> Iterator[None]:
        """SIGINT/SIGTERM cancel the demo (once); later ones cannot cut the cleanup short."""
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        installed: list[signal.Signals] = []
        if enabled and task is not None and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, self.on_signal, sig, task)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
