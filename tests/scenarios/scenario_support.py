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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import bcrypt
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import TABLE_NAMES, create_schema
from agentic_loadkit.reference_platform.server import PlatformProcess
from locust_argv import REPO, locust_argv

__all__ = [
    "PASSWORD_ROUNDS",
    "PROVISION",
    "REPO",
    "TABLES",
    "V1_PASSWORD",
    "LocustRun",
    "Platforms",
    "ProvisionedRun",
    "agents_created_by_pool_users",
    "audit_watermark",
    "locust_env",
    "logins_since",
    "provision",
    "provision_v1",
    "run_locust",
    "simulated_logins",
    "table_counts",
]

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


V1_TENANTS = 3
V1_USERS_PER_TENANT = 4
V1_AGENTS_PER_TENANT = 6
V1_PASSWORD = "v1-load-secret"


async def _seed_v1(url: str) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    """Tenants, users, agents, workflows, collections and MCP servers in v1's columns (the contract's rules)."""
    hashed = bcrypt.hashpw(V1_PASSWORD.encode(), bcrypt.gensalt(rounds=PASSWORD_ROUNDS)).decode()
    conn = await asyncpg.connect(url)
    accounts: list[dict[str, str]] = []
    tenants: list[dict[str, object]] = []
    try:
        async with conn.transaction():
            for t in range(V1_TENANTS):
                tid = uuid.uuid4()
                slug = f"v1load-{t}-{tid.hex[:6]}"
                await conn.execute(
                    "INSERT INTO tenants (id, name, slug, status, plan_type, email, max_agents, max_requests_per_day,"
                    " max_tokens_per_month) VALUES ($1, $2, $3, 'active', 'pro', $4, 100, 10000, 1000000)",
                    tid, f"V1 load {t}", slug, f"ops@{slug}.example",
                )
                for u in range(V1_USERS_PER_TENANT):
                    uid = uuid.uuid4()
                    email = f"user{u}@{slug}.example"
                    await conn.execute(
                        "INSERT INTO users (id, tenant_id, email, username, password_hash, status, email_verified,"
                        " role) VALUES ($1, $2, $3, $4, $5, 'active', true, $6)",
                        uid, tid, email, f"user{u}", hashed, "admin" if u == 0 else "user",
                    )
                    accounts.append({"email": email, "password": V1_PASSWORD, "tenant_id": str(tid),
                                     "tenant_slug": slug, "user_id": str(uid), "role": "admin" if u == 0 else "user"})
                rows = {
                    "agents": await conn.fetch(
                        "INSERT INTO agents (id, tenant_id, name, slug, status, model_provider, model_name,"
                        " temperature, max_tokens, capabilities, tools, timeout_seconds, max_iterations,"
                        " memory_enabled, version, tags, config) SELECT gen_random_uuid(), $1, 'agent ' || g,"
                        " 'agent-' || g, 'active', 'anthropic', 'claude-sonnet-4-5', 0.7, 4096, '[]', '[]', 300, 10,"
                        " true, '1.0.0', '[\"seed\"]', '{}' FROM generate_series(1, $2) g RETURNING id::text",
                        tid, V1_AGENTS_PER_TENANT),
                    "workflows": await conn.fetch(
                        "INSERT INTO workflows (id, tenant_id, name, slug, version, steps, triggers, timeout_seconds,"
                        " max_retries, retry_strategy, status, execution_count, success_count, failure_count)"
                        " SELECT gen_random_uuid(), $1, 'workflow ' || g, 'workflow-' || g, '1.0.0',"
                        " '[{\"type\": \"agent\", \"name\": \"step 1\"}]', '[]', 3600, 3, 'exponential', 'active',"
                        " 0, 0, 0 FROM generate_series(1, 3) g RETURNING id::text", tid),
                    "collections": await conn.fetch(
                        "INSERT INTO collections (id, tenant_id, name, embedding_model, embedding_dimensions,"
                        " chunk_size, chunk_overlap, visibility, document_count, chunk_count) SELECT"
                        " gen_random_uuid(), $1, 'collection ' || g, 'all-MiniLM-L6-v2', 384, 512, 50, 'private', 0, 0"
                        " FROM generate_series(1, 2) g RETURNING id::text", tid),
                    "mcp_servers": await conn.fetch(
                        "INSERT INTO mcp_servers (id, tenant_id, name, slug, server_type, command, status, version,"
                        " visibility, total_executions, successful_executions, failed_executions) SELECT"
                        " gen_random_uuid(), $1, 'server ' || g, 'server-' || g, 'stdio', 'npx', 'active', '1.0.0',"
                        " 'private', 0, 0, 0 FROM generate_series(1, 2) g RETURNING id::text", tid),
                }
                tenants.append({"id": str(tid), "slug": slug, **{k: [r[0] for r in v] for k, v in rows.items()}})
    finally:
        await conn.close()
    return accounts, tenants


def provision_v1(target: DatabaseTarget, state_dir: Path) -> ProvisionedRun:
    """The v1 schema with rows seeded by SQL, and a credentials pool in ``provision up``'s layout.

    Stands in for ``provision up`` on a v1 database (made by the provisioning side): the
    scenarios read only the pool and its manifest.
    """
    asyncio.run(create_schema(target.asyncpg_url, "uuid", dialect="v1"))
    accounts, tenants = asyncio.run(_seed_v1(target.asyncpg_url))
    run_id = f"v1seed-{uuid.uuid4().hex[:8]}"
    run_dir = state_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    with (run_dir / "credentials.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(accounts[0]))
        writer.writeheader()
        writer.writerows(accounts)
    (run_dir / "manifest.json").write_text(json.dumps({"format": 1, "run_id": run_id, "tenants": tenants}))
    run = ProvisionedRun(target.asyncpg_url, state_dir, run_dir, run_id)
    run.users = {a["user_id"]: a["email"] for a in accounts}
    run.tenants = {str(t["id"]): {"agents": t["agents"], "workflows": t["workflows"]} for t in tenants}  # type: ignore[misc]
    return run


def simulated_logins(logins: dict[str, int], results: dict | None) -> dict[str, int]:
    """Logins per user the simulated users made: the platform's count less the master's one warm-up login."""
    warm = ((results or {}).get("api") or {}).get("warm_up") or {}
    counts = dict(logins)
    user = warm.get("user_id")
    if warm.get("login_status") == 200 and user in counts:
        counts[user] -= 1
        if counts[user] == 0:
            del counts[user]
    return counts


class Platforms:
    """Starts reference platforms (one per distinct environment) and stops them all at the end.

    Every limiter is off unless a test turns one on (v1's through ``PLATFORM_V1_RATE_LIMIT``,
    a switch only the reference platform has: the real one cannot be turned off).
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.started: dict[tuple[tuple[str, str], ...], PlatformProcess] = {}

    def url(self, **env: str) -> str:
        key = tuple(sorted(env.items()))
        proc = self.started.get(key)
        if proc is None or not proc.running:
            env = {"RATE_LIMIT_ENABLED": "false", "PLATFORM_V1_RATE_LIMIT": "false", **env}
            proc = PlatformProcess(self.database_url, env=env)
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
    argv = locust_argv(*args, results=results)
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=locust_env(env))
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
