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

import asyncpg
from agentic_loadkit.provisioning.api import EmbeddedPostgres, mask_text
from agentic_loadkit.provisioning.errors import Interrupted, ProvisionError, TeardownIncomplete, first_line
from agentic_loadkit.provisioning.progress import ProgressCallback, ProgressEvent, null_progress

from .phases import phase_database, phase_down, phase_load, phase_platform, phase_schema, phase_up
from .session import DemoSession
from .settings import DemoResult, DemoSettings
from .verdict import read_gate_verdict

__all__ = ["run_demo"]


async def run_demo(
    settings: DemoSettings, progress: ProgressCallback = null_progress, *, handle_signals: bool = True
) -> DemoResult:
    """Run the demo (see the module docstring); returns once everything it started is stopped.

    Raises ``InputError`` on a bad setting before touching anything; after the cleanup,
    ``Interrupted`` (130) on an interrupt, ``LoadTestFailed`` (14) when Locust neither
    passed nor breached, or the failed phase's own error.  With ``handle_signals`` (main
    thread only) SIGINT and SIGTERM belong to the demo while it runs.
    """
    demo = DemoSession(settings, progress)
    code: int | None = None
    failure: BaseException | None = None
    with demo.signals(handle_signals):
        try:
            await phase_database(demo)
            await phase_schema(demo)
            await phase_platform(demo)
            await phase_up(demo)
            code = await phase_load(demo)
            await phase_down(demo)
        except (Exception, asyncio.CancelledError, KeyboardInterrupt) as exc:
            failure, demo.failed_in = exc, demo.phase
            task = asyncio.current_task()
            while task is not None and task.cancelling():  # the cancel becomes Interrupted below
                task.uncancel()
        cleanup = asyncio.ensure_future(_finish(demo))
        while not cleanup.done():
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:  # cancelled again from outside: the cleanup goes on
                demo.interrupted = demo.interrupted or "cancelled"
        problems = cleanup.result()
    if failure is not None and (demo.interrupted or isinstance(
        failure, asyncio.CancelledError | KeyboardInterrupt | Interrupted
    )):
        raise Interrupted(_interrupt_message(demo, problems)) from None
    if failure is not None:
        raise failure
    if problems:
        raise TeardownIncomplete(f"The demo finished but {problems[0]}.", run_id=demo.run_id)
    assert code is not None
    return _result(demo, code)


async def _finish(demo: DemoSession) -> list[str]:
    """Stop Locust, tear the run down, stop the platform and the server the demo started;
    return what could not be done."""
    demo.cleaning = True
    problems: list[str] = []
    if demo.locust is not None:
        await demo.locust.stop()
    await asyncio.to_thread(concurrent.futures.wait, demo.pending)  # starts still running in threads
    if demo.run_id is not None and not demo.down_tried and demo.target is not None:
        try:
            await phase_down(demo)
        except (ProvisionError, asyncpg.PostgresError, OSError) as exc:
            problems.append(f"run {demo.run_id} could not be torn down ({_sentence(exc)}); "
                            f"'provision down {demo.run_id} --database-url {demo.target.masked}' removes it")
    demo.begin("stop", "stopping the platform" + (" and the embedded database" * demo.owns_embedded))
    if demo.platform is not None:
        await asyncio.to_thread(demo.platform.stop)
    if demo.owns_embedded:
        try:
            demo.embedded_stopped = await asyncio.to_thread(EmbeddedPostgres(demo.state_dir).stop)
        except Exception as exc:  # pg_ctl's assorted errors: reported, never masking the outcome
            problems.append(f"the embedded database could not be stopped ({_sentence(exc)}); "
                            "'provision db stop' stops it")
    demo.executor.shutdown(wait=False)
    demo.end("stop")
    for problem in problems:
        demo.progress(ProgressEvent("warning", message=problem))
    return problems


def _interrupt_message(demo: DemoSession, problems: list[str]) -> str:
    done = []
    if demo.run_id is None:
        done.append("no run had been provisioned")
    elif demo.down is not None and not demo.rows_left:
        done.append(f"run {demo.run_id} was torn down ({demo.rows_removed:,} rows deleted, none left)")
    stopped = [name for name, flag in (
        ("Locust", demo.locust is not None), ("the platform", demo.platform is not None),
        ("the embedded database", demo.embedded_stopped)) if flag]
    if stopped:
        names = ", ".join(stopped[:-1]) + " and " + stopped[-1] if len(stopped) > 1 else stopped[0]
        done.append(f"{names} {'were' if len(stopped) > 1 else 'was'} stopped")
    head = f"Interrupted ({demo.interrupted or 'cancelled'}) in the {demo.failed_in or 'database'} phase"
    return f"{head}; {'; '.join(done + problems)}." if done or problems else f"{head}."


def _result(demo: DemoSession, code: int) -> DemoResult:
    assert demo.up is not None and demo.target is not None and demo.db is not None
    up = demo.up
    return DemoResult(
        exit_code=code, gate=read_gate_verdict(demo.results_path),
        run_id=up.run_id, scale=up.scale, seed=up.seed, counts=dict(up.counts), rows_made=up.rows,
        rows_removed=demo.rows_removed, rows_left=demo.rows_left, database=demo.target.masked,
        database_source=demo.db.source, schema_created=demo.schema_created,
        embedded_stopped=demo.embedded_stopped, platform_url=demo.platform_url,
        load_profile=demo.profile.name, time_scale=demo.settings.time_scale,
        peak_users=demo.profile.peak_users, out_dir=demo.out_dir,
        html_report=demo.html_path if demo.html_path.exists() else None,
        results_json=demo.results_path if demo.results_path.exists() else None, locust_log=demo.log_path,
        phases={k: round(v, 3) for k, v in demo.phases.items() if v >= 0}, notes=tuple(demo.notes),
    )


def _sentence(exc: BaseException) -> str:
    return mask_text(first_line(exc)).rstrip(".")
