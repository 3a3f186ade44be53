"""The demo's phases, in order (``settings.DEMO_PHASES``), each recording in the session
what it started; ``cycle.run_demo`` runs them and the cleanup."""

from __future__ import annotations

import os
import sys
from dataclasses import replace

from agentic_loadkit.provisioning.api import (
    DEFAULT_BCRYPT_COST,
    DownSettings,
    EmbeddedPostgres,
    ensure_state_dir,
    provision_down,
    provision_up,
    resolve_database,
)
from agentic_loadkit.provisioning.errors import (
    CredentialsError,
    LoadTestFailed,
    RunNotFound,
    SchemaMismatch,
    TeardownIncomplete,
)
from agentic_loadkit.reference_platform.schema import TABLE_NAMES, create_schema

from .database import ensure_database, platform_tables, run_residue
from .locustrun import LocustRun, last_error_line
from .session import DemoSession
from .settings import DEMO_DATABASE, LOAD_GRACE_SECONDS

__all__ = ["locust_argv", "phase_database", "phase_down", "phase_load", "phase_platform", "phase_schema",
           "phase_up"]


async def phase_database(demo: DemoSession) -> None:
    demo.begin("database", "resolving the database (the embedded server when no URL is given)")
    if demo.settings.database_url is None and not os.environ.get("DATABASE_URL"):
        ensure_state_dir(demo.state_dir)
        status = await demo.blocking(EmbeddedPostgres(demo.state_dir).status)
        demo.owns_embedded = not status.running  # set before starting it: a ^C meanwhile still stops it
    url, state_dir = demo.settings.database_url, demo.state_dir
    demo.db = await demo.blocking(lambda: resolve_database(url, state_dir=state_dir))
    demo.owns_embedded = demo.owns_embedded and demo.db.source == "embedded"
    started = ", started by the demo" if demo.owns_embedded else ""
    demo.info(f"database server: {demo.db.masked} ({demo.db.source}{started})")
    demo.end("database")


async def phase_schema(demo: DemoSession) -> None:
    assert demo.db is not None
    demo.begin("schema", "the reference platform's schema (never over existing tables)")
    target = demo.db.target
    if demo.db.source == "embedded" or await platform_tables(target):
        target = await ensure_database(target, DEMO_DATABASE)
    demo.target = target
    found = await platform_tables(target)
    if not found:
        await create_schema(target.asyncpg_url, "uuid")
        demo.schema_created = True
        demo.info(f"reference schema created in {target.masked}")
    elif found == set(TABLE_NAMES):
        demo.info(f"reusing the reference schema in {target.masked}")
    else:
        missing = ", ".join(t for t in TABLE_NAMES if t not in found)
        raise SchemaMismatch(
            f"The database {target.database!r} holds some of the platform's tables but not {missing}; "
            "drop it or pass --database-url of an empty database."
        )
    demo.end("schema")


async def phase_platform(demo: DemoSession) -> None:
    assert demo.target is not None
    from agentic_loadkit.reference_platform.server import PlatformProcess

    demo.begin("platform", "serving the reference platform on 127.0.0.1")
    env = {"RATE_LIMIT_ENABLED": "true" if demo.settings.rate_limit else "false",
           "PLATFORM_FAULTS": "none", "PLATFORM_BREAK_ISOLATION": "0"}
    demo.platform = PlatformProcess(demo.target.asyncpg_url, env=env)
    demo.platform_url = await demo.blocking(demo.platform.start)
    demo.info(f"platform: {demo.platform_url}", url=demo.platform_url)
    if not demo.settings.rate_limit:
        demo.notes.append("rate limiting is off on the demo's platform, as the guide runs load tests "
                          "(RATE_LIMIT_ENABLED=false); --rate-limit turns it on")
    demo.end("platform")


async def phase_up(demo: DemoSession) -> None:
    assert demo.target is not None
    demo.begin("up", f"provisioning scale {demo.prep.scale}")
    cost = demo.settings.bcrypt_cost
    if cost != DEFAULT_BCRYPT_COST:
        demo.notes.append(f"passwords hashed at bcrypt cost {cost}, not the platform's "
                          f"{DEFAULT_BCRYPT_COST}: logins are cheaper than in production")
    up = await provision_up(replace(demo.up_settings, database_url=demo.target.asyncpg_url), demo.inner)
    demo.up, demo.run_id = up, up.run_id
    demo.info(f"run {up.run_id} ready: {up.rows:,} rows, {up.active_users} accounts in the pool",
              run_id=up.run_id)
    if demo.profile.peak_users > up.active_users:
        raise CredentialsError(
            f"The pool holds {up.active_users} accounts but the load needs {demo.profile.peak_users} "
            "users; lower --users or provision more with --set users=N."
        )
    demo.end("up")


def locust_argv(demo: DemoSession) -> list[str]:
    assert demo.up is not None
    s = demo.settings
    argv = [
        sys.executable, "-m", "locust", "-f", str(demo.locustfile), "--headless",
        "--host", demo.platform_url, "--credentials", str(demo.up.credentials_path),
        "--load-profile", s.load_profile, "--time-scale", repr(s.time_scale),
        "--results-json", str(demo.results_path), "--html", str(demo.html_path), "--only-summary",
    ]
    if s.users is not None:
        argv += ["--users", str(s.users)]
    if s.spawn_rate is not None:
        argv += ["--spawn-rate", repr(s.spawn_rate)]
    return argv + list(s.locust_args)


async def phase_load(demo: DemoSession) -> int:
    """Locust's exit code: 0 the gate passed, 3 it breached; anything else is ``LoadTestFailed``."""
    p = demo.profile
    demo.begin("load", f"Locust: {p.name} profile, {p.peak_users} users, about {p.duration_s:.0f} s")
    demo.out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (demo.results_path, demo.html_path, demo.log_path):
        stale.unlink(missing_ok=True)
    demo.locust = LocustRun(locust_argv(demo), demo.out_dir, demo.log_path)
    pid = await demo.locust.start()
    demo.info(f"Locust started (pid {pid}), log {demo.log_path}", pid=pid)
    code = await demo.locust.wait(demo.settings.load_timeout or p.duration_s + LOAD_GRACE_SECONDS)
    demo.end("load")
    if code not in (0, 3):
        raise LoadTestFailed(
            f"The load test failed with Locust exit code {code} "
            f"({last_error_line(demo.locust.output())}); its log is {demo.log_path}.",
            locust_exit_code=code,
        )
    return code


async def phase_down(demo: DemoSession) -> None:
    assert demo.target is not None and demo.run_id is not None
    run_id = demo.run_id
    demo.begin("down", f"tearing down run {run_id} and verifying that nothing is left")
    settings = DownSettings(run_id=run_id, database_url=demo.target.asyncpg_url, state_dir=demo.state_dir)
    try:
        demo.down = await provision_down(settings, demo.inner)
    except RunNotFound:  # up was stopped before it recorded the run: nothing was written
        demo.down_tried, demo.run_id = True, None
        demo.end("down")
        return
    except Exception:
        demo.down_tried = True  # a real failure is not retried by the cleanup (an interrupt is)
        raise
    demo.down_tried = True
    demo.rows_left = await run_residue(demo.target, run_id, every_row=demo.schema_created)
    if demo.rows_left:
        raise TeardownIncomplete(
            f"After teardown {demo.rows_left} rows of run {run_id} are still in the platform's tables.",
            run_id=run_id,
        )
    demo.info(f"run {run_id} removed: {demo.rows_removed:,} rows deleted, 0 left", run_id=run_id)
    demo.end("down")
