"""Helpers shared by the ``provision down`` tests (imported, not a conftest: the folder is shared).

They write runs the way ``up`` and the platform would, straight into the reference schema:
the ledger (``create_run``, ``record_tenants`` before any row of a tenant, ``set_status``)
and rows in every table, including those the toolkit never writes (conversations,
documents below collections, audit_events with a tenant column but no foreign key).

The checks (``residue``, ``checksum``) are written per table by hand from the reference
schema, independently of ``fkgraph``, so that they can catch its mistakes.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.runs import ledger
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import TABLE_NAMES
from dbtools import execute, fetchval, run  # noqa: F401  (re-exported to the teardown tests)
from dbtools import fetch_async as _fetch  # noqa: F401

TABLES = TABLE_NAMES
_COUNTER = itertools.count(1)

# rows of each table that belong to the tenants in $1 (text[]), by hand from the reference schema
_OWNED = {
    "tenants": "t.id::text = ANY($1::text[])",
    "documents": "t.collection_id IN (SELECT c.id FROM {s}.collections c WHERE c.tenant_id::text = ANY($1::text[]))",
}


def _owned(table: str, schema: str = "public") -> str:
    return _OWNED.get(table, "t.tenant_id::text = ANY($1::text[])").format(s=schema)


@dataclass(frozen=True)
class SeededRun:
    run_id: str
    tenant_ids: list[str]
    rows: dict[str, int]  # per table, what was written for the run's tenants


async def _tenant_rows(conn: asyncpg.Connection, tag: str, *, size: int = 1) -> tuple[Any, dict[str, int]]:
    """One tenant with rows in every table; ``tag`` goes into its slug and emails."""
    n = next(_COUNTER)
    tid = await conn.fetchval(
        "INSERT INTO tenants (name, slug) VALUES ($1, $2) RETURNING id", f"Tenant {tag} {n}", f"{tag}-t{n}"
    )
    counts = dict.fromkeys(TABLES, 0)
    counts["tenants"] = 1
    users = []
    for i in range(2 * size):
        users.append(
            await conn.fetchval(
                "INSERT INTO users (tenant_id, email, username, hashed_password, full_name) "
                "VALUES ($1, $2, $3, '$2b$04$' || repeat('x', 53), 'A User') RETURNING id",
                tid,
                f"u{i}.{tag}.{n}@example.com",
                f"u{i}{tag}{n}",
            )
        )
    counts["users"] = len(users)
    agents = []
    for i in range(3 * size):
        agents.append(
            await conn.fetchval(
                "INSERT INTO agents (tenant_id, created_by, name, slug, system_prompt) "
                "VALUES ($1, $2, $3, $4, repeat('You are helpful. ', 20)) RETURNING id",
                tid,
                users[i % len(users)],
                f"Agent {i}",
                f"{tag}-a{i}",
            )
        )
    counts["agents"] = len(agents)
    for i in range(2 * size):
        await conn.execute(
            "INSERT INTO workflows (tenant_id, created_by, name, slug) VALUES ($1, $2, $3, $4)",
            tid,
            users[0],
            f"W {i}",
            f"{tag}-w{i}",
        )
        coll = await conn.fetchval(
            "INSERT INTO collections (tenant_id, name, slug) VALUES ($1, $2, $3) RETURNING id",
            tid,
            f"C {i}",
            f"{tag}-c{i}",
        )
        for j in range(2):
            await conn.execute("INSERT INTO documents (collection_id, title) VALUES ($1, $2)", coll, f"Doc {j}")
        await conn.execute(
            "INSERT INTO mcp_servers (tenant_id, name, slug, transport, url) "
            "VALUES ($1, $2, $3, 'sse', 'https://mcp.example.com/sse')",
            tid,
            f"M {i}",
            f"{tag}-m{i}",
        )
    counts.update(workflows=2 * size, collections=2 * size, documents=4 * size, mcp_servers=2 * size)
    for i, agent in enumerate(agents):  # what the platform makes while under load
        await conn.execute(
            "INSERT INTO conversations (tenant_id, agent_id, user_id, title) VALUES ($1, $2, $3, 'chat')",
            tid,
            agent,
            users[i % len(users)],
        )
        await conn.execute(
            "INSERT INTO audit_events (tenant_id, user_id, action, object_id) VALUES ($1, $2, 'agent.create', $3)",
            tid,
            users[i % len(users)],
            str(agent),
        )
    await conn.execute("INSERT INTO audit_events (tenant_id, user_id, action) VALUES ($1, $2, 'login')", tid, users[0])
    counts.update(conversations=len(agents), audit_events=len(agents) + 1)
    return tid, counts


async def seed_run_async(
    target: DatabaseTarget,
    *,
    run_id: str | None = None,
    tenants: int = 2,
    status: str = "ready",
    size: int = 1,
    tag: str | None = None,
) -> SeededRun:
    """A run as ``up`` leaves it: ledger first, each tenant id recorded before (with) its rows."""
    run_id = run_id or ledger.new_run_id()
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        await ledger.ensure_ledger(conn)
        await ledger.create_run(conn, run_id=run_id, scale="small", seed=1, counts={}, toolkit_version="test")
        ids: list[str] = []
        total = dict.fromkeys(TABLES, 0)
        for _ in range(tenants):
            async with conn.transaction():
                tid, counts = await _tenant_rows(conn, tag or run_id, size=size)
                await ledger.record_tenants(conn, run_id, [tid])
            ids.append(str(tid))
            total = {k: total[k] + counts[k] for k in TABLES}
        if status != "provisioning":
            await ledger.set_status(conn, run_id, status)  # type: ignore[arg-type]
        return SeededRun(run_id, ids, total)
    finally:
        await conn.close()


def seed_run(target: DatabaseTarget, **kw: Any) -> SeededRun:
    return run(seed_run_async(target, **kw))


async def seed_foreign_async(target: DatabaseTarget, *, tag: str, tenants: int = 2) -> list[str]:
    """Tenants of no run (``tag`` may be a run id: slugs and emails that look like that run's)."""
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        out = []
        for _ in range(tenants):
            tid, _counts = await _tenant_rows(conn, tag)
            out.append(str(tid))
        # a platform row with no user
        await conn.execute("INSERT INTO audit_events (tenant_id, action) VALUES ($1, 'system')", tid)
        return out
    finally:
        await conn.close()


def seed_foreign(target: DatabaseTarget, *, tag: str, tenants: int = 2) -> list[str]:
    return run(seed_foreign_async(target, tag=tag, tenants=tenants))




def foreign_conversation(target: DatabaseTarget, seeded: SeededRun, foreign_tenant: str) -> Any:
    """A conversation of ``foreign_tenant`` with one of the run's agents (a cross-tenant reference); its id."""
    agent = fetchval(target, "SELECT id FROM agents WHERE tenant_id::text = $1 LIMIT 1", seeded.tenant_ids[0])
    user = fetchval(target, "SELECT id FROM users WHERE tenant_id::text = $1 LIMIT 1", foreign_tenant)
    return fetchval(
        target,
        "INSERT INTO conversations (tenant_id, agent_id, user_id) VALUES ($1::text::uuid, $2, $3) RETURNING id",
        foreign_tenant,
        agent,
        user,
    )


def residue(target: DatabaseTarget, tenant_ids: Sequence[str], schema: str = "public") -> dict[str, int]:
    """Rows per table that still belong to ``tenant_ids`` (only tables with rows left)."""
    out = {}
    for t in TABLES:
        n = fetchval(target, f'SELECT count(*) FROM "{schema}"."{t}" t WHERE {_owned(t, schema)}', list(tenant_ids))
        if n:
            out[t] = int(n)
    return out


def owned_counts(target: DatabaseTarget, tenant_ids: Sequence[str], schema: str = "public") -> dict[str, int]:
    return {
        t: int(fetchval(target, f'SELECT count(*) FROM "{schema}"."{t}" t WHERE {_owned(t, schema)}', list(tenant_ids)))
        for t in TABLES
    }


def checksum(target: DatabaseTarget, exclude: Sequence[str] = (), schema: str = "public") -> dict[str, str]:
    """md5 over every row of every platform table, ordered, leaving out the rows of ``exclude`` tenants."""
    out = {}
    for t in TABLES:
        out[t] = fetchval(
            target,
            f"SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') "
            f'FROM "{schema}"."{t}" t WHERE ({_owned(t, schema)}) IS NOT TRUE',
            list(exclude),
        )
    return out


def run_status(target: DatabaseTarget, run_id: str) -> str | None:
    return fetchval(target, "SELECT status FROM provisioning.runs WHERE run_id = $1", run_id)


# A harder schema on top of the reference one: a self reference, a users ↔ agents cycle
# through nullable keys, a two-column foreign key, a referencing table in another schema
# (without an index), a tenant column of another type (text), and a tenant-column table
# in another schema that teardown must leave alone.
VARIANT_SQL = """
ALTER TABLE agents ADD COLUMN parent_id uuid REFERENCES agents(id);
CREATE INDEX ix_agents_parent_id ON agents (parent_id);
ALTER TABLE users ADD COLUMN default_agent_id uuid REFERENCES agents(id);
CREATE INDEX ix_users_default_agent_id ON users (default_agent_id);
ALTER TABLE collections ADD CONSTRAINT uq_collections_id_tenant UNIQUE (id, tenant_id);
CREATE TABLE collection_shares (
    id bigserial PRIMARY KEY, collection_id uuid NOT NULL, tenant_id uuid NOT NULL, note text,
    FOREIGN KEY (collection_id, tenant_id) REFERENCES collections (id, tenant_id));
CREATE INDEX ix_collection_shares_coll ON collection_shares (collection_id, tenant_id);
CREATE SCHEMA analytics;
CREATE TABLE analytics.agent_stats (agent_id uuid NOT NULL REFERENCES public.agents(id) ON DELETE CASCADE, hits int);
CREATE TABLE analytics.events (tenant_id uuid, what text);
CREATE TABLE usage_logs (tenant_id text NOT NULL, n int);
"""
VARIANT_TABLES = ("collection_shares", "analytics.agent_stats", "usage_logs")


async def variant_rows_async(target: DatabaseTarget, tenant_ids: Sequence[str]) -> dict[str, int]:
    """Rows in the variant's extra tables (and links) for each tenant; returns rows per extra table."""
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        counts = dict.fromkeys(VARIANT_TABLES, 0)
        for tid in tenant_ids:
            agents = [
                r["id"]
                for r in await conn.fetch("SELECT id FROM agents WHERE tenant_id = $1::text::uuid ORDER BY id", tid)
            ]
            await conn.execute("UPDATE agents SET parent_id = $1 WHERE id = ANY($2::uuid[])", agents[0], agents[1:])
            await conn.execute(
                "UPDATE users SET default_agent_id = $1 WHERE tenant_id = $2::text::uuid", agents[-1], tid
            )
            for a in agents:
                await conn.execute("INSERT INTO analytics.agent_stats VALUES ($1, 1)", a)
            n = await conn.fetchval(
                "WITH i AS (INSERT INTO collection_shares (collection_id, tenant_id) "
                "SELECT id, tenant_id FROM collections WHERE tenant_id = $1::text::uuid RETURNING 1) "
                "SELECT count(*) FROM i",
                tid,
            )
            await conn.execute("INSERT INTO usage_logs VALUES ($1, 1), ($1, 2)", tid)
            await conn.execute("INSERT INTO analytics.events VALUES ($1::text::uuid, 'elsewhere')", tid)
            counts["collection_shares"] += n
            counts["analytics.agent_stats"] += len(agents)
            counts["usage_logs"] += 2
        return counts
    finally:
        await conn.close()


def variant_rows(target: DatabaseTarget, tenant_ids: Sequence[str]) -> dict[str, int]:
    return run(variant_rows_async(target, tenant_ids))
