"""``provision down`` stays exact on the v1 schema: run-time rows in all 14 of the platform's run-time tables
(self-referencing chains and SET NULL keys included), inside the run's tenants and in a foreign run's
tenants, plus a row of the global MCP registry; ``down`` leaves 0 rows of the run and every other row as
it was (checksum), for UUID and integer keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.reference_platform.schema import RUNTIME_TABLES, V1_TABLES
from typer.testing import CliRunner
from up_helpers import run, up

runner = CliRunner()
ROWS_PER_TABLE = 3  # a chain: row k refers to row k-1 through a self-reference


async def _columns(conn: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        "SELECT column_name, data_type, is_nullable = 'YES' AS nullable, column_default IS NOT NULL AS has_default, "
        "is_identity = 'YES' AS identity FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position", table))


async def _foreign_keys(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch("""
        SELECT kcu.column_name, ccu.table_name AS parent FROM information_schema.table_constraints tc
        JOIN information_schema.key_column_usage kcu USING (constraint_schema, constraint_name)
        JOIN information_schema.constraint_column_usage ccu USING (constraint_schema, constraint_name)
        WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public' AND tc.table_name = $1""", table)
    return {r["column_name"]: r["parent"] for r in rows}


_CONSTANTS = {"text": "md5(random()::text)", "character varying": "left(md5(random()::text), 16)",
              "integer": "1", "bigint": "1", "boolean": "false", "json": "'{}'", "jsonb": "'{}'",
              "timestamp with time zone": "now()", "double precision": "0.5"}


async def insert_runtime_rows(conn: asyncpg.Connection, tenant: Any, id_kind: str) -> None:
    """Rows the platform makes while it runs, in every run-time table of one tenant: every foreign key
    (nullable SET NULL ones too) names a row of the same tenant, self-references form chains."""
    for table in RUNTIME_TABLES:
        columns, fks = await _columns(conn, table), await _foreign_keys(conn, table)
        previous: Any = None
        for k in range(ROWS_PER_TABLE):
            names, values, args = [], [], []
            for c in columns:
                name = c["column_name"]
                if name == "id":
                    if id_kind == "uuid":
                        names.append(name)
                        values.append("gen_random_uuid()")
                    continue
                if name == "tenant_id":
                    args.append(tenant)
                    names.append(name)
                    values.append(f"${len(args)}")
                elif name in fks:
                    parent = fks[name]
                    if parent == table:
                        ref = previous
                    else:
                        key = "id" if parent == "tenants" else "tenant_id"
                        ref = await conn.fetchval(f'SELECT id FROM "{parent}" WHERE {key} = $1 ORDER BY id '
                                                  f"OFFSET {k} LIMIT 1", tenant) or await conn.fetchval(
                            f'SELECT id FROM "{parent}" WHERE {key} = $1 ORDER BY id LIMIT 1', tenant)
                    if ref is None:
                        assert c["nullable"], (table, name)
                        continue
                    args.append(ref)
                    names.append(name)
                    values.append(f"${len(args)}")
                elif not c["nullable"] and not c["has_default"]:
                    names.append(name)
                    values.append(_CONSTANTS[c["data_type"]])
            previous = await conn.fetchval(
                f'INSERT INTO "{table}" ({", ".join(chr(34) + n + chr(34) for n in names)}) '
                f"VALUES ({', '.join(values)}) RETURNING id", *args)


def _tenant_filter(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


async def _state(conn: asyncpg.Connection, run_id: str) -> tuple[dict[str, int], str]:
    """(rows of the run per table, checksum of every other row of all 21 tables)."""
    run_rows: dict[str, int] = {}
    parts = []
    for table in V1_TABLES:
        if table == "mcp_server_registry":
            where_run, where_other = "$1::text IS NULL", "$1::text IS NOT NULL"  # global: never the run's
        else:
            key = _tenant_filter(table)
            inside = f"{key}::text IN (SELECT tenant_id FROM provisioning.run_tenants WHERE run_id = $1)"
            where_run, where_other = inside, f"NOT ({inside})"
        run_rows[table] = int(await conn.fetchval(f'SELECT count(*) FROM "{table}" WHERE {where_run}', run_id))
        parts.append(await conn.fetchval(
            f'SELECT count(*) || \':\' || coalesce(md5(string_agg(t::text, \'|\' ORDER BY t::text)), \'\') '
            f'FROM "{table}" t WHERE {where_other}', run_id))
    return run_rows, "/".join(parts)


@pytest.mark.parametrize("id_kind", ["uuid", "integer"])
def test_down_removes_every_run_time_row_of_the_run_and_nothing_else(
    id_kind: str, db_factory: Any, tmp_path: Path
) -> None:
    target: DatabaseTarget = db_factory.new(schema=id_kind, dialect="v1")
    mine, foreign = up(target, tmp_path, seed=1), up(target, tmp_path, seed=2, scale="small")

    async def populate() -> tuple[dict[str, int], str]:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            for run_id in (mine.run_id, foreign.run_id):
                for (tenant,) in await conn.fetch(
                        "SELECT t.id FROM tenants t JOIN provisioning.run_tenants r ON r.tenant_id = t.id::text "
                        "WHERE r.run_id = $1", run_id):
                    await insert_runtime_rows(conn, tenant, id_kind)
            await conn.execute(
                "INSERT INTO mcp_server_registry (" + ("id, " if id_kind == "uuid" else "") +
                "name, slug, server_type, category, version, author, status, visibility, install_count, "
                "usage_count, star_count, rating_count, is_featured, is_official) VALUES (" +
                ("gen_random_uuid(), " if id_kind == "uuid" else "") +
                "'files', 'files', 'stdio', 'system', '1.0.0', 'x', 'published', 'public', 0, 0, 0, 0, false, true)")
            return await _state(conn, mine.run_id)
        finally:
            await conn.close()

    before_rows, before_foreign = run(populate())
    assert all(before_rows[t] >= ROWS_PER_TABLE for t in RUNTIME_TABLES), before_rows
    res = runner.invoke(cli.app, ["--state-dir", str(tmp_path), "down", mine.run_id, "--database-url", target.url])
    assert res.exit_code == 0, res.output

    async def after() -> tuple[dict[str, int], str]:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            return await _state(conn, mine.run_id)
        finally:
            await conn.close()

    rows, foreign_checksum = run(after())
    assert rows == dict.fromkeys(V1_TABLES, 0)
    assert foreign_checksum == before_foreign
