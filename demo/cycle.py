"""``provision demo``: the whole job on one machine in one command, leaving nothing behind.

Phases, in order (each one a ``phase`` progress event whose data has ``demo: True``):

1. ``database``: resolve the database (``--database-url``, else ``DATABASE_URL``, else the
   embedded server under the state directory, started if it is not running);
2. ``schema``: the reference platform's schema, never over existing tables: in the target
   database when it has none of the platform's tables, else (and always on the embedded
   server) in a database of its own, ``agentic_demo``, created if missing and reused by
   later demos;
3. ``platform``: the reference platform in a uvicorn subprocess on a free 127.0.0.1 port
   (rate limiting off unless asked: the guide's load tests run without it);
4. ``up``: ``provision_up`` of a scale (default ``small``);
5. ``load``: a headless Locust run of the scenarios (light profile at time scale 0.5,
   about a minute) with the run's credentials pool, gated, writing an HTML report and
   the results JSON; bounded by a hard timeout;
6. ``down``: ``provision_down`` of the run, then an independent check that no row of the
   run's tenants is left (every platform table empty when the demo created them);
7. ``stop``: the platform stopped; the embedded server stopped only if the demo started it.

The demo's exit code is the gate's (0 pass, 3 breach).  Whatever happens after phase 1
(an error, Ctrl-C, SIGTERM, a cancelled task) the same cleanup runs, shielded from a
second interrupt: Locust's process group is stopped, the run is torn down if ``up``
recorded one, the platform is stopped, and the embedded server too if the demo started
it.  Only a SIGKILL of the demo skips it; then the platform exits by itself (it watches
its parent), Locust gets SIGTERM from the kernel (on Linux; elsewhere it ends with its
profile), and ``provision down`` removes the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from agentic_loadkit.provisioning.down.teardown import DownResult, DownSettings, provision_down
from agentic_loadkit.provisioning.errors import (
    CredentialsError,
    InputError,
    Interrupted,
    LoadTestFailed,
    ProvisionError,
    RunNotFound,
    SchemaMismatch,
    TeardownIncomplete,
)
from agentic_loadkit.provisioning.generate.passwords import DEFAULT_BCRYPT_COST
from agentic_loadkit.provisioning.progress import ProgressCallback, ProgressEvent, null_progress
from agentic_loadkit.provisioning.target.embedded import EmbeddedPostgres
from agentic_loadkit.provisioning.target.resolve import ResolvedDatabase, resolve_database
from agentic_loadkit.provisioning.target.statedir import ensure_state_dir
from agentic_loadkit.provisioning.target.url import DatabaseTarget, mask_text
from agentic_loadkit.provisioning.up.provision import UpResult, UpSettings, prepare_run, provision_up

from .database import PLATFORM_TABLES, ensure_database, platform_tables, run_residue
from .locustrun import (
    LocustRun,
    check_locust_args,
    extract_gate_table,
    last_error_line,
    locustfile_path,
    resolve_demo_profile,
    table_from_results,
)

__all__ = ["DEFAULT_TIME_SCALE", "DEMO_DATABASE", "DEMO_PHASES", "DemoResult", "DemoSettings", "run_demo"]

T = TypeVar("T")

DEMO_DATABASE = "agentic_demo"
DEMO_PHASES = ("database", "schema", "platform", "up", "load", "down", "stop")
DEFAULT_TIME_SCALE = 0.5
LOAD_GRACE_SECONDS = 120.0  # on top of the profile's length: start-up, logins, Locust's shutdown


@dataclass(frozen=True)
class DemoSettings:
    scale: str = "small"
    overrides: tuple[str, ...] = ()
    seed: int | None = None
    database_url: str | None = None
    state_dir: Path | None = None
    load_profile: str = "light"
    time_scale: float = DEFAULT_TIME_SCALE
    users: int | None = None  # None: the profile's
    spawn_rate: float | None = None
    out_dir: Path | None = None  # None: <state_dir>/demo
    rate_limit: bool = False
    bcrypt_cost: int = DEFAULT_BCRYPT_COST
    locust_args: tuple[str, ...] = ()  # more scenario/Locust options, e.g. ("--gate-min-rps", "50")
    load_timeout: float | None = None  # None: the profile's length + LOAD_GRACE_SECONDS


@dataclass(frozen=True)
class DemoResult:
    exit_code: int  # the gate's: 0 pass, 3 breach
    gate_table: str  # as the scenarios printed it
    run_id: str
    scale: str
    seed: int
    counts: dict[str, int]
    rows_made: int
    rows_removed: int  # includes the rows the platform made during the load
    rows_left: int
    database: str  # masked
    database_source: str
    schema_created: bool
    embedded_stopped: bool
    platform_url: str
    load_profile: str
    time_scale: float
    peak_users: int
    out_dir: Path
    html_report: Path | None
    results_json: Path | None
    locust_log: Path
    phases: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def gate_passed(self) -> bool:
        return self.exit_code == 0


class _Demo:
    """One demo in progress: what it started, so that the cleanup stops exactly that."""

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

    # -- helpers ---------------------------------------------------------------------------------
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

    # -- phases ----------------------------------------------------------------------------------
    async def phase_database(self) -> None:
        self.begin("database", "resolving the database (the embedded server when no URL is given)")
        if self.settings.database_url is None and not os.environ.get("DATABASE_URL"):
            ensure_state_dir(self.state_dir)
            status = await self.blocking(EmbeddedPostgres(self.state_dir).status)
            self.owns_embedded = not status.running  # set before starting it: a ^C meanwhile still stops it
        url, state_dir = self.settings.database_url, self.state_dir
        self.db = await self.blocking(lambda: resolve_database(url, state_dir=state_dir))
        self.owns_embedded = self.owns_embedded and self.db.source == "embedded"
        started = ", started by the demo" if self.owns_embedded else ""
        self.info(f"database server: {self.db.masked} ({self.db.source}{started})")
        self.end("database")

    async def phase_schema(self) -> None:
        assert self.db is not None
        self.begin("schema", "the reference platform's schema (never over existing tables)")
        target = self.db.target
        if self.db.source == "embedded" or await platform_tables(target):
            target = await ensure_database(target, DEMO_DATABASE)
        self.target = target
        found = await platform_tables(target)
        if not found:
            from agentic_loadkit.reference_platform.schema import create_schema

            await create_schema(target.asyncpg_url, "uuid")
            self.schema_created = True
            self.info(f"reference schema created in {target.masked}")
        elif found == set(PLATFORM_TABLES):
            self.info(f"reusing the reference schema in {target.masked}")
        else:
            missing = ", ".join(t for t in PLATFORM_TABLES if t not in found)
            raise SchemaMismatch(
                f"The database {target.database!r} holds some of the platform's tables but not {missing}; "
                "drop it or pass --database-url of an empty database."
            )
        self.end("schema")

    async def phase_platform(self) -> None:
        assert self.target is not None
        from agentic_loadkit.reference_platform.server import PlatformProcess

        self.begin("platform", "serving the reference platform on 127.0.0.1")
        env = {"RATE_LIMIT_ENABLED": "true" if self.settings.rate_limit else "false",
               "PLATFORM_FAULTS": "none", "PLATFORM_BREAK_ISOLATION": "0"}
        self.platform = PlatformProcess(self.target.asyncpg_url, env=env)
        self.platform_url = await self.blocking(self.platform.start)
        self.info(f"platform: {self.platform_url}", url=self.platform_url)
        if not self.settings.rate_limit:
            self.notes.append("rate limiting is off on the demo's platform, as the guide runs load tests "
                              "(RATE_LIMIT_ENABLED=false); --rate-limit turns it on")
        self.end("platform")

    async def phase_up(self) -> None:
        assert self.target is not None
        self.begin("up", f"provisioning scale {self.prep.scale}")
        cost = self.settings.bcrypt_cost
        if cost != DEFAULT_BCRYPT_COST:
            self.notes.append(f"passwords hashed at bcrypt cost {cost}, not the platform's "
                              f"{DEFAULT_BCRYPT_COST}: logins are cheaper than in production")
        up = await provision_up(replace(self.up_settings, database_url=self.target.asyncpg_url), self.inner)
        self.up, self.run_id = up, up.run_id
        self.info(f"run {up.run_id} ready: {up.rows:,} rows, {up.active_users} accounts in the pool",
                  run_id=up.run_id)
        if self.profile.peak_users > up.active_users:
            raise CredentialsError(
                f"The pool holds {up.active_users} accounts but the load needs {self.profile.peak_users} "
                "users; lower --users or provision more with --set users=N."
            )
        self.end("up")

    def locust_argv(self) -> list[str]:
        assert self.up is not None
        s = self.settings
        argv = [
            sys.executable, "-m", "locust", "-f", str(self.locustfile), "--headless",
            "--host", self.platform_url, "--credentials", str(self.up.credentials_path),
            "--load-profile", s.load_profile, "--time-scale", repr(s.time_scale),
            "--results-json", str(self.results_path), "--html", str(self.html_path), "--only-summary",
        ]
        if s.users is not None:
            argv += ["--users", str(s.users)]
        if s.spawn_rate is not None:
            argv += ["--spawn-rate", repr(s.spawn_rate)]
        return argv + list(s.locust_args)

    async def phase_load(self) -> int:
        p = self.profile
        self.begin("load", f"Locust: {p.name} profile, {p.peak_users} users, about {p.duration_s:.0f} s")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (self.results_path, self.html_path, self.log_path):
            stale.unlink(missing_ok=True)
        self.locust = LocustRun(self.locust_argv(), self.out_dir, self.log_path)
        pid = await self.locust.start()
        self.info(f"Locust started (pid {pid}), log {self.log_path}", pid=pid)
        code = await self.locust.wait(self.settings.load_timeout or p.duration_s + LOAD_GRACE_SECONDS)
        self.end("load")
        if code not in (0, 3):
            raise LoadTestFailed(
                f"The load test failed with Locust exit code {code} "
                f"({last_error_line(self.locust.output())}); its log is {self.log_path}.",
                locust_exit_code=code,
            )
        return code

    async def phase_down(self) -> None:
        assert self.target is not None and self.run_id is not None
        run_id = self.run_id
        self.begin("down", f"tearing down run {run_id} and verifying that nothing is left")
        settings = DownSettings(run_id=run_id, database_url=self.target.asyncpg_url, state_dir=self.state_dir)
        try:
            self.down = await provision_down(settings, self.inner)
        except RunNotFound:  # up was stopped before it recorded the run: nothing was written
            self.down_tried, self.run_id = True, None
            self.end("down")
            return
        except Exception:
            self.down_tried = True  # a real failure is not retried by the cleanup (an interrupt is)
            raise
        self.down_tried = True
        self.rows_left = await run_residue(self.target, run_id, every_row=self.schema_created)
        if self.rows_left:
            raise TeardownIncomplete(
                f"After teardown {self.rows_left} rows of run {run_id} are still in the platform's tables.",
                run_id=run_id,
            )
        self.info(f"run {run_id} removed: {self.rows_removed:,} rows deleted, 0 left", run_id=run_id)
        self.end("down")

    @property
    def rows_removed(self) -> int:
        return sum(r.total_rows for r in self.down.runs) if self.down is not None else 0

    # -- cleanup ---------------------------------------------------------------------------------
    async def finish(self) -> list[str]:
        """Stop Locust, tear the run down, stop the platform and the server the demo started;
        return what could not be done."""
        self.cleaning = True
        problems: list[str] = []
        if self.locust is not None:
            await self.locust.stop()
        await asyncio.to_thread(concurrent.futures.wait, self.pending)  # starts still running in threads
        if self.run_id is not None and not self.down_tried and self.target is not None:
            try:
                await self.phase_down()
            except (ProvisionError, asyncpg.PostgresError, OSError) as exc:
                problems.append(f"run {self.run_id} could not be torn down ({_sentence(exc)}); "
                                f"'provision down {self.run_id} --database-url {self.target.masked}' removes it")
        self.begin("stop", "stopping the platform" + (" and the embedded database" * self.owns_embedded))
        if self.platform is not None:
            await asyncio.to_thread(self.platform.stop)
        if self.owns_embedded:
            try:
                self.embedded_stopped = await asyncio.to_thread(EmbeddedPostgres(self.state_dir).stop)
            except Exception as exc:  # pg_ctl's assorted errors: reported, never masking the outcome
                problems.append(f"the embedded database could not be stopped ({_sentence(exc)}); "
                                "'provision db stop' stops it")
        self.executor.shutdown(wait=False)
        self.end("stop")
        for problem in problems:
            self.progress(ProgressEvent("warning", message=problem))
        return problems

    def interrupt_message(self, problems: list[str]) -> str:
        done = []
        if self.run_id is None:
            done.append("no run had been provisioned")
        elif self.down is not None and not self.rows_left:
            done.append(f"run {self.run_id} was torn down ({self.rows_removed:,} rows deleted, none left)")
        stopped = [name for name, flag in (
            ("Locust", self.locust is not None), ("the platform", self.platform is not None),
            ("the embedded database", self.embedded_stopped)) if flag]
        if stopped:
            names = ", ".join(stopped[:-1]) + " and " + stopped[-1] if len(stopped) > 1 else stopped[0]
            done.append(f"{names} {'were' if len(stopped) > 1 else 'was'} stopped")
        head = f"Interrupted ({self.interrupted or 'cancelled'}) in the {self.failed_in or 'database'} phase"
        return f"{head}; {'; '.join(done + problems)}." if done or problems else f"{head}."

    def result(self, code: int) -> DemoResult:
        assert self.up is not None and self.target is not None and self.db is not None
        output = self.locust.output() if self.locust is not None else ""
        up = self.up
        return DemoResult(
            exit_code=code, gate_table=extract_gate_table(output) or table_from_results(self.results_path),
            run_id=up.run_id, scale=up.scale, seed=up.seed, counts=dict(up.counts), rows_made=up.rows,
            rows_removed=self.rows_removed, rows_left=self.rows_left, database=self.target.masked,
            database_source=self.db.source, schema_created=self.schema_created,
            embedded_stopped=self.embedded_stopped, platform_url=self.platform_url,
            load_profile=self.profile.name, time_scale=self.settings.time_scale,
            peak_users=self.profile.peak_users, out_dir=self.out_dir,
            html_report=self.html_path if self.html_path.exists() else None,
            results_json=self.results_path if self.results_path.exists() else None, locust_log=self.log_path,
            phases={k: round(v, 3) for k, v in self.phases.items() if v >= 0}, notes=tuple(self.notes),
        )


async def run_demo(
    settings: DemoSettings, progress: ProgressCallback = null_progress, *, handle_signals: bool = True
) -> DemoResult:
    """Run the demo (see the module docstring); returns once everything it started is stopped.

    Raises ``InputError`` on a bad setting before touching anything; after the cleanup,
    ``Interrupted`` (130) on an interrupt, ``LoadTestFailed`` (14) when Locust neither
    passed nor breached, or the failed phase's own error.  With ``handle_signals`` (main
    thread only) SIGINT and SIGTERM belong to the demo while it runs.
    """
    demo = _Demo(settings, progress)
    code: int | None = None
    failure: BaseException | None = None
    with demo.signals(handle_signals):
        try:
            await demo.phase_database()
            await demo.phase_schema()
            await demo.phase_platform()
            await demo.phase_up()
            code = await demo.phase_load()
            await demo.phase_down()
        except (Exception, asyncio.CancelledError, KeyboardInterrupt) as exc:
            failure, demo.failed_in = exc, demo.phase
            task = asyncio.current_task()
            while task is not None and task.cancelling():  # the cancel becomes Interrupted below
                task.uncancel()
        cleanup = asyncio.ensure_future(demo.finish())
        while not cleanup.done():
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:  # cancelled again from outside: the cleanup goes on
                demo.interrupted = demo.interrupted or "cancelled"
        problems = cleanup.result()
    if failure is not None and (demo.interrupted or isinstance(
        failure, asyncio.CancelledError | KeyboardInterrupt | Interrupted
    )):
        raise Interrupted(demo.interrupt_message(problems)) from None
    if failure is not None:
        raise failure
    if problems:
        raise TeardownIncomplete(f"The demo finished but {problems[0]}.", run_id=demo.run_id)
    assert code is not None
    return demo.result(code)


def _sentence(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, ProvisionError) else str(exc)
    return (mask_text(text.strip().splitlines()[0]) if text.strip() else type(exc).__name__).rstrip(".")
