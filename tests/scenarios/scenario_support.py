"""Helpers of the scenario tests: provisioned data, reference platforms, Locust runs, platform-side checks.

Every Locust run here is real: a ``locust`` subprocess, headless (or with its web UI
on 127.0.0.1), against a reference platform in a uvicorn subprocess on 127.0.0.1, with
a credentials pool of a provisioned run.  Runs are short (6-15 s) and small (10-20
users, cost-4 bcrypt hashes so that logins are cheap).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from agentic_loadkit.fixtures.platform.schema import TABLE_NAMES
from agentic_loadkit.fixtures.platform.server import PlatformProcess
from agentic_loadkit.provisioning.dburl import DatabaseTarget

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "scenarios" / "locustfile.py"
LOCUST = str(Path(sys.executable).with_name("locust"))
PROVISION = str(Path(sys.executable).with_name("provision"))
PASSWORD_ROUNDS = 4
TABLES = TABLE_NAMES


@dataclass
class ProvisionedRun:
    """A run's pool as ``provision up`` lays it out, and what the tests need to check the platform."""

    database_url: str
    state_dir: Path
    run_dir: Path
    run_id: str
    users: dict[str, str] = field(default_factory=dict)  # user_id -> email (active users of the pool)
    tenants: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def credentials(self) -> Path:
        return self.run_dir / "credentials.csv"


def provision(
    target: DatabaseTarget, state_dir: Path, *, tenants: int = 4, users: int = 20, agents: int = 32
) -> ProvisionedRun:
    """``provision up`` (small counts, cost-4 hashes, uniform tenants) into ``state_dir``; the run's pool."""
    cmd = [
        PROVISION,
        "--state-dir",
        str(state_dir),
        "up",
        "--database-url",
        target.asyncpg_url,
        "--set",
        f"tenants={tenants}",
        "--set",
        f"users={users}",
        "--set",
        f"agents={agents}",
        "--set",
        f"workflows={tenants * 3}",
        "--set",
        f"collections={tenants * 2}",
        "--set",
        f"mcp_servers={tenants * 2}",
        "--uniform",
        "--seed",
        "7",
        "--bcrypt-cost",
        str(PASSWORD_ROUNDS),
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=locust_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    run_dir = Path(summary["run_dir"])
    manifest = json.loads((run_dir / "manifest.json").read_text())
    run = ProvisionedRun(target.asyncpg_url, state_dir, run_dir, str(manifest["run_id"]))
    with (run_dir / "credentials.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            run.users[row["user_id"]] = row["email"]
    run.tenants = {t["id"]: {"agents": t["agents"], "workflows": t["workflows"]} for t in manifest["tenants"]}
    return run


class Platforms:
    """Starts reference platforms (one per distinct environment) and stops them all at the end."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.started: dict[tuple[tuple[str, str], ...], PlatformProcess] = {}

    def url(self, **env: str) -> str:
        key = tuple(sorted(env.items()))
        proc = self.started.get(key)
        if proc is None or not proc.running:
            proc = PlatformProcess(self.database_url, env={"RATE_LIMIT_ENABLED": "false", **env})
            proc.start()
            self.started[key] = proc
        return proc.base_url

    def stop_all(self) -> None:
        for proc in self.started.values():
            proc.stop()
        self.started.clear()


@dataclass
class LocustRun:
    code: int
    stdout: str
    stderr: str
    results: dict | None = None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def locust_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a Locust subprocess: gevent's monkey patch ON (as in production)."""
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    return {**env, "PYTHONUNBUFFERED": "1", **(extra or {})}


def run_locust(
    args: list[str], *, cwd: Path, timeout: float = 60, results: Path | None = None, env: dict[str, str] | None = None
) -> LocustRun:
    """``locust -f scenarios/locustfile.py ARGS`` in a subprocess; returns exit code, output, results JSON."""
    cmd = [LOCUST, "-f", str(LOCUSTFILE), *args]
    if results is not None:
        cmd += ["--results-json", str(results)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=locust_env(env))
    doc = json.loads(results.read_text()) if results is not None and results.exists() else None
    return LocustRun(proc.returncode, proc.stdout, proc.stderr, doc)


async def _logins(url: str, after_id: int) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT user_id::text AS user_id, count(*) AS n FROM audit_events"
            " WHERE action = 'login' AND id > $1 GROUP BY user_id",
            after_id,
        )
        return {r["user_id"]: int(r["n"]) for r in rows}
    finally:
        await conn.close()


async def _watermark(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM audit_events"))
    finally:
        await conn.close()


def audit_watermark(run: ProvisionedRun) -> int:
    """The newest audit event id now (logins after it belong to the next Locust run)."""
    return asyncio.run(_watermark(run.database_url))


def logins_since(run: ProvisionedRun, watermark: int) -> dict[str, int]:
    """Logins per user id recorded BY THE PLATFORM (audit_events) after ``watermark``."""
    return asyncio.run(_logins(run.database_url, watermark))


async def _agents_created(url: str, after_id: int) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE a.tenant_id = u.tenant_id) AS mine,"
            " count(*) FILTER (WHERE a.tenant_id <> u.tenant_id) AS elsewhere"
            " FROM audit_events e JOIN agents a ON a.id::text = e.object_id JOIN users u ON u.id = e.user_id"
            " WHERE e.action = 'agent.create' AND e.id > $1",
            after_id,
        )
        assert row is not None
        return int(row["mine"]), int(row["elsewhere"])
    finally:
        await conn.close()


def agents_created_by_pool_users(run: ProvisionedRun, watermark: int) -> tuple[int, int]:
    """Agents created after ``watermark``: (in the creator's own tenant, in another tenant)."""
    return asyncio.run(_agents_created(run.database_url, watermark))


async def _table_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in TABLES}
    finally:
        await conn.close()


def table_counts(run: ProvisionedRun) -> dict[str, int]:
    """Rows in each table of the reference schema."""
    return asyncio.run(_table_counts(run.database_url))
