"""Helpers of the hostile suite: ``provision`` in subprocesses, polling with deadlines, and the
independent checks every fault ends with (foreign-data checksum, residue).

The checks are written by hand from the reference schema (``fixtures/platform/schema.py``),
independently of ``fkgraph`` and ``teardown``, so that they can catch those modules' mistakes:

- ``checksum``: md5 over every row of every platform table, ordered, leaving out the rows that
  belong to tenants some run recorded in the ledger (``provisioning.run_tenants``): what is left
  is the foreign data, which no fault may change;
- ``residue``: rows that still belong to a run's tenants, in every table of the database that
  has a tenant column (found in the catalog, not from a list) plus ``documents`` (below
  ``collections``) and ``tenants`` itself.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import TABLE_NAMES
from dbtools import execute, fetch, fetchval, run
from polltools import wait_until

__all__ = [
    "DEADLINE",
    "PLATFORM_TABLES",
    "Foreign",
    "Holder",
    "active_tenants",
    "add_lookalike",
    "assert_one_sentence",
    "checksum",
    "execute",
    "fetch",
    "fetchval",
    "files_under",
    "ledger_tenants",
    "provision",
    "provision_env",
    "residue",
    "run",
    "run_is_live",
    "run_status",
    "seed_foreign",
    "spawn",
    "wait_for",
    "waiting_on",
]

DEADLINE = 60.0
PLATFORM_TABLES = TABLE_NAMES
# rows of each table that belong to the tenant ids in $1 (text[])
_OWNED = {
    "tenants": "t.id::text = ANY($1::text[])",
    "documents": "t.collection_id IN (SELECT c.id FROM public.collections c WHERE c.tenant_id::text = ANY($1::text[]))",
}
_LOCK_CLASS = 0x4C4B


def _owned(table: str) -> str:
    return _OWNED.get(table, "t.tenant_id::text = ANY($1::text[])")




def ledger_tenants(target: DatabaseTarget, run_id: str | None = None) -> list[str]:
    """Tenant ids the ledger records (for one run, or for every run); [] without a ledger."""
    if not fetchval(target, "SELECT to_regclass('provisioning.run_tenants') IS NOT NULL"):
        return []
    if run_id is None:
        rows = fetch(target, "SELECT DISTINCT tenant_id FROM provisioning.run_tenants")
    else:
        rows = fetch(target, "SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1", run_id)
    return sorted(r[0] for r in rows)


def run_status(target: DatabaseTarget, run_id: str) -> str | None:
    if not fetchval(target, "SELECT to_regclass('provisioning.runs') IS NOT NULL"):
        return None
    return fetchval(target, "SELECT status FROM provisioning.runs WHERE run_id = $1", run_id)


def run_is_live(target: DatabaseTarget, run_id: str) -> bool:
    """Some session holds the run's advisory lock (read from pg_locks directly)."""
    return bool(
        fetchval(
            target,
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = $1::int::oid AND objid = hashtext($2)::oid AND objsubid = 2 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            _LOCK_CLASS,
            run_id,
        )
    )


def active_tenants(target: DatabaseTarget, tenant_ids: Sequence[str]) -> int:
    """How many of ``tenant_ids`` are 'active' (the platform logs in users of active tenants only)."""
    query = "SELECT count(*) FROM tenants WHERE id::text = ANY($1) AND status = 'active'"
    return int(fetchval(target, query, list(tenant_ids)))


def checksum(target: DatabaseTarget) -> dict[str, str]:
    """Row count and md5 of every platform table's foreign rows (rows of no run's tenants), ordered."""

    async def go() -> dict[str, str]:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            exclude: list[str] = []
            if await conn.fetchval("SELECT to_regclass('provisioning.run_tenants') IS NOT NULL"):
                exclude = [r[0] for r in await conn.fetch("SELECT DISTINCT tenant_id FROM provisioning.run_tenants")]
            out = {}
            for t in PLATFORM_TABLES:
                out[t] = await conn.fetchval(
                    "SELECT count(*)::text || ':' || "
                    "coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
                    f"FROM public.{t} t WHERE ({_owned(t)}) IS NOT TRUE",
                    exclude,
                )
            return out
        finally:
            await conn.close()

    return dict(run(go()))


def residue(target: DatabaseTarget, tenant_ids: Sequence[str]) -> dict[str, int]:
    """Rows left per table for ``tenant_ids``: every table with a tenant column, documents, tenants."""
    tables = [
        (r["table_schema"], r["table_name"])
        for r in fetch(
            target,
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'tenant_id' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema', 'provisioning') ORDER BY 1, 2",
        )
    ]
    out: dict[str, int] = {}
    checks = [(f"{s}.{n}", f'"{s}"."{n}"', "t.tenant_id::text = ANY($1::text[])") for s, n in tables]
    checks += [("public.tenants", "public.tenants", _OWNED["tenants"])]
    checks += [("public.documents", "public.documents", _OWNED["documents"])]
    for label, name, where in checks:
        n = int(fetchval(target, f"SELECT count(*) FROM {name} t WHERE {where}", list(tenant_ids)))
        if n:
            out[label] = n
    return out


class Holder:
    """A session the test controls (its own event loop): takes locks, holds them, lets go."""

    def __init__(self, target: DatabaseTarget) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(target.asyncpg_url))
        self.pid = self.conn.get_server_pid()

    def execute(self, statement: str, *args: Any) -> None:
        self.loop.run_until_complete(self.conn.execute(statement, *args))

    def begin(self, *statements: str) -> Holder:
        self.execute("BEGIN")
        for statement in statements:
            self.execute(statement)
        return self

    def release(self) -> None:
        if not self.conn.is_closed():
            self.loop.run_until_complete(self.conn.close())
        self.loop.close()

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def waiting_on(target: DatabaseTarget, application: str, relation: str | None = None) -> bool:
    """A backend of ``application`` waits for a lock (on ``relation`` when given), per pg_locks."""
    return bool(
        fetchval(
            target,
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE NOT l.granted AND a.application_name = $1 AND a.datname = current_database() "
            "AND ($2::text IS NULL OR l.relation = to_regclass($2)))",
            application,
            relation,
        )
    )


# --- foreign data ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Foreign:
    """Foreign tenants seeded into a database (of no run)."""

    tenant_ids: tuple[str, ...]


async def _tenant(conn: asyncpg.Connection, slug: str, email_domain: str, tag: str, status: str = "active") -> str:
    """One tenant with rows in every platform table, including the platform-made ones."""
    tid = await conn.fetchval(
        "INSERT INTO tenants (name, slug, status) VALUES ($1, $2, $3) RETURNING id", f"Foreign {tag}", slug, status
    )
    users = [
        await conn.fetchval(
            "INSERT INTO users (tenant_id, email, username, hashed_password, full_name) "
            "VALUES ($1, $2, $3, '$2b$04$' || repeat('x', 53), 'A Foreigner') RETURNING id",
            tid,
            f"user{i}.{tag}@{email_domain}",
            f"user{i}-{tag}",
        )
        for i in range(2)
    ]
    agents = [
        await conn.fetchval(
            "INSERT INTO agents (tenant_id, created_by, name, slug, system_prompt) "
            "VALUES ($1, $2, $3, $4, 'You are a foreign agent.') RETURNING id",
            tid,
            users[i % 2],
            f"Agent {i}",
            f"{slug}-a{i}",
        )
        for i in range(3)
    ]
    await conn.execute(
        "INSERT INTO workflows (tenant_id, created_by, name, slug) VALUES ($1, $2, 'W', $3)", tid, users[0], f"{slug}-w"
    )
    coll = await conn.fetchval(
        "INSERT INTO collections (tenant_id, name, slug) VALUES ($1, 'C', $2) RETURNING id", tid, f"{slug}-c"
    )
    await conn.execute("INSERT INTO documents (collection_id, title) VALUES ($1, 'Doc'), ($1, 'Doc 2')", coll)
    await conn.execute(
        "INSERT INTO mcp_servers (tenant_id, name, slug, transport, url) "
        "VALUES ($1, 'M', $2, 'sse', 'https://mcp.example.com/sse')",
        tid,
        f"{slug}-m",
    )
    for agent in agents:
        await conn.execute(
            "INSERT INTO conversations (tenant_id, agent_id, user_id, title) VALUES ($1, $2, $3, 'chat')",
            tid,
            agent,
            users[0],
        )
    await conn.execute(
        "INSERT INTO audit_events (tenant_id, user_id, action) VALUES ($1, $2, 'login'), ($1, NULL, 'system')",
        tid,
        users[1],
    )
    return str(tid)


async def seed_foreign_async(url: str) -> Foreign:
    conn = await asyncpg.connect(url)
    try:
        ids = [
            await _tenant(conn, "acme-foreign", "acme.example.com", "plain"),
            await _tenant(conn, "globex-foreign", "globex.example.com", "off", status="suspended"),
            # looks like a run's tenant: a run-id-shaped namespace in its slug and email domain
            await _tenant(conn, "initech-r0000000-0", "r0000000.initech.example.com", "lookalike"),
        ]
        return Foreign(tuple(ids))
    finally:
        await conn.close()


def seed_foreign(target: DatabaseTarget) -> Foreign:
    return run(seed_foreign_async(target.asyncpg_url))


def add_lookalike(target: DatabaseTarget, run_id: str) -> str:
    """A foreign tenant carrying a live run's exact id in its slug and emails (as the run's own do)."""

    async def go() -> str:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            return await _tenant(conn, f"hooli-{run_id}-0", f"{run_id}.hooli.example.com", f"look-{run_id}")
        finally:
            await conn.close()

    return str(run(go()))


# --- the CLI in subprocesses ---------------------------------------------------------------------------------

_SCRUB = ("DATABASE_URL", "PROVISION_ALLOW_REMOTE", "PROVISION_STATE_DIR", "PROVISION_DEBUG", "PGHOST", "PGSERVICE")


def provision_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(extra or {})
    return env


def _cmd(state: Path | None, args: Sequence[str]) -> list[str]:
    head = [sys.executable, "-m", "agentic_loadkit.cli"]
    return [*head, *(["--state-dir", str(state)] if state is not None else []), *args]


def provision(
    state: Path | None, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``provision`` to completion (a real process)."""
    return subprocess.run(
        _cmd(state, args), env=provision_env(env), capture_output=True, text=True, timeout=timeout, check=False
    )


def spawn(state: Path | None, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _cmd(state, args), env=provision_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(
    condition: Callable[[], Any],
    what: str,
    proc: subprocess.Popen[str] | None = None,
    deadline: float = DEADLINE,
) -> Any:
    """``wait_until`` with the hostile suite's deadline, polling every 20 ms: the value of ``condition``
    once truthy; fails if ``proc`` ends first or time runs out."""
    return wait_until(condition, deadline, 0.02, what=what, proc=proc)


def assert_one_sentence(stderr: str, code: int, expected_code: int, *needles: str, alone: bool = False) -> str:
    """stderr ends with exactly one line ``error: <sentence>.`` (progress lines may come before it,
    none with ``alone``), with no traceback anywhere; returns the sentence."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == expected_code, f"exit {code}, expected {expected_code}: {stderr[-2000:]}"
    errors = [line for line in lines if line.startswith("error")]
    assert len(errors) == 1 and lines[-1] == errors[0], f"expected one error line, last: {stderr[-2000:]}"
    if alone:
        assert len(lines) == 1, f"expected nothing but the error on stderr: {stderr[-2000:]}"
    line = errors[0]
    assert line.startswith("error: ") and line.rstrip().endswith("."), line
    assert "Traceback" not in stderr and 'File "' not in stderr, stderr
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def files_under(path: Path) -> list[Path]:
    """Every regular file (or symlink) below ``path`` ([] when it does not exist)."""
    if not path.exists():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() or p.is_symlink())
