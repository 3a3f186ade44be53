"""Where the demo's platform lives, and the check that a torn-down run left nothing.

The demo never creates tables over existing ones: it looks for the reference platform's
tables (``platform_tables``), and when the target holds some, it uses a database of its
own on the same server (``ensure_database``).  After ``provision down`` it counts, on
its own, what is left of the run (``run_residue``): a second opinion on the teardown's
verification that does not go through the foreign-key graph.
"""

from __future__ import annotations

import asyncpg
from agentic_loadkit.provisioning.api import DatabaseTarget, connect, mask_text, run_tenant_ids
from agentic_loadkit.provisioning.errors import DatabaseUnreachable, first_line
from agentic_loadkit.reference_platform.schema import TABLE_NAMES

__all__ = ["ensure_database", "platform_tables", "run_residue"]


async def platform_tables(target: DatabaseTarget) -> set[str]:
    conn = await connect(target)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name = ANY($1::text[])", list(TABLE_NAMES),
        )
        return {r["table_name"] for r in rows}
    finally:
        await conn.close()


async def ensure_database(server: DatabaseTarget, name: str) -> DatabaseTarget:
    """``name`` on the same server, created if missing (a concurrent creator is fine)."""
    conn = await connect(server)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:
                pass
            except asyncpg.PostgresError as exc:
                raise DatabaseUnreachable(
                    f"PostgreSQL on {server.host_label} refused to create the demo database {name!r} "
                    f"({mask_text(first_line(exc)).rstrip('.')}); pass --database-url of an empty database instead.",
                    database=name,
                ) from None
    finally:
        await conn.close()
    return server.with_database(name)


async def run_residue(target: DatabaseTarget, run_id: str, *, every_row: bool) -> int:
    """Rows of the run's tenants left in the platform's tables; with ``every_row`` (the demo
    created the tables) any row at all counts."""
    conn = await connect(target)
    try:
        ids = await run_tenant_ids(conn, run_id)
        left = 0
        for table in TABLE_NAMES:
            if every_row:
                left += await conn.fetchval(f'SELECT count(*) FROM public."{table}"')
                continue
            column = "id" if table == "tenants" else "tenant_id"
            if await conn.fetchval(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' "
                "AND table_name = $1 AND column_name = $2", table, column,
            ):
                left += await conn.fetchval(
                    f'SELECT count(*) FROM public."{table}" WHERE "{column}"::text = ANY($1::text[])', ids
                )
        return int(left)
    finally:
        await conn.close()
