"""Reflecting the live schema and planning the writes: key kinds, missing tables/columns, filled and
pinned columns, and integer id blocks reserved from the tables' own sequences under concurrency."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import itertools
import uuid
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from agentic_loadkit.provisioning.errors import InputError, SchemaMismatch
from agentic_loadkit.provisioning.generate.binding import plan_tables
from agentic_loadkit.provisioning.generate.columnvalues import coerce_value, fill_value
from agentic_loadkit.provisioning.generate.dataset import TABLE_COLUMNS
from agentic_loadkit.provisioning.schema.reflect import TablePlan, reflect_tables
from agentic_loadkit.provisioning.schema.schemamap import SchemaMap, parse_schema_map
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.provisioning.up.idblocks import reserve_id_blocks
from agentic_loadkit.reference_platform.schema import create_schema
from sqlalchemy.dialects import postgresql as pg

NOW = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _plans(target: DatabaseTarget, smap: SchemaMap | None = None) -> dict[str, TablePlan]:
    smap = smap or SchemaMap()
    live = _run(reflect_tables(target, smap))
    return plan_tables(live, smap, now=NOW)


async def _sql(target: DatabaseTarget, sql: str) -> None:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_reference_uuid_schema(platform_db: DatabaseTarget) -> None:
    plans = _plans(platform_db)
    assert list(plans) == list(TABLE_COLUMNS)
    assert {p.id_kind for p in plans.values()} == {"uuid"}
    assert plans["agents"].parents == ("tenants", "users")
    assert plans["tenants"].parents == ()
    assert plans["tenants"].tenant_column == "id" and plans["agents"].tenant_column == "tenant_id"
    assert all(not p.filled and not p.dropped and p.transform is None for p in plans.values())
    assert plans["agents"].columns == TABLE_COLUMNS["agents"]
    assert plans["agents"].index_count == 4  # the key, tenant_id, created_by, (tenant_id, slug)


def test_reference_integer_schema_and_id_blocks(platform_db_int: DatabaseTarget) -> None:
    plans = _plans(platform_db_int)
    assert {p.id_kind for p in plans.values()} == {"integer"}
    assert plans["agents"].id_sequence and "agents" in plans["agents"].id_sequence

    async def go() -> tuple[list[dict[str, int]], int]:
        conns = [await asyncpg.connect(platform_db_int.asyncpg_url) for _ in range(3)]
        try:
            # three concurrent reservations of 1,000 agents each
            blocks = await asyncio.gather(
                *(reserve_id_blocks(c, plans, {"agents": 1000, "users": 5}) for c in conns)
            )
            # the platform's own insert afterwards gets an id past every block
            tenant = await conns[0].fetchval(
                "INSERT INTO tenants (name, slug) VALUES ('t', 't') RETURNING id"
            )
            platform_id = await conns[0].fetchval(
                "INSERT INTO agents (tenant_id, name, slug) VALUES ($1, 'a', 'a') RETURNING id", tenant
            )
            return list(blocks), int(platform_id)
        finally:
            for c in conns:
                await c.close()

    blocks, platform_id = _run(go())
    starts = sorted(b["agents"] for b in blocks)
    assert all(b - a >= 1000 for a, b in itertools.pairwise(starts))  # disjoint blocks
    assert platform_id >= starts[-1] + 1000
    assert all(b["tenants"] == 1 for b in blocks)  # no rows asked: no reservation, no sequence moved


def test_missing_table_is_named(fresh_db: DatabaseTarget) -> None:
    with pytest.raises(SchemaMismatch, match=r"no table public\.tenants") as info:
        _plans(fresh_db)
    assert info.value.table == "tenants"


@pytest.fixture(scope="module")
def variant_db(db_factory: Any) -> DatabaseTarget:
    return db_factory.new()


def _variant(target: DatabaseTarget, schema: str, *extra_sql: str) -> None:
    _run(create_schema(target.asyncpg_url, "uuid", schema=schema))
    for sql in extra_sql:
        _run(_sql(target, sql))


def test_absent_known_column_is_skipped_but_a_missing_essential_is_named(variant_db: DatabaseTarget) -> None:
    _variant(variant_db, "v_missing", "ALTER TABLE v_missing.agents DROP COLUMN system_prompt")
    agents = _plans(variant_db, SchemaMap(schema="v_missing"))["agents"]
    assert "system_prompt" not in agents.columns
    assert [s.concept for s in agents.skipped if s.concept == "system_prompt"] == ["system_prompt"]
    _run(_sql(variant_db, "ALTER TABLE v_missing.users DROP COLUMN hashed_password"))
    with pytest.raises(SchemaMismatch, match=r"v_missing\.users has no column for the password hash.*"
                       r"looked for hashed_password \| password_hash") as info:
        _plans(variant_db, SchemaMap(schema="v_missing"))
    assert info.value.column == "hashed_password"


def test_optional_columns_are_dropped_and_unknown_not_null_columns_filled(variant_db: DatabaseTarget) -> None:
    _variant(
        variant_db,
        "v_extra",
        "ALTER TABLE v_extra.agents DROP COLUMN updated_at",
        "CREATE TYPE v_extra.tier AS ENUM ('bronze', 'silver')",
        "ALTER TABLE v_extra.agents ADD COLUMN region text NOT NULL, ADD COLUMN priority int NOT NULL, "
        "ADD COLUMN tier v_extra.tier NOT NULL, ADD COLUMN optional_note text, "
        "ADD COLUMN defaulted int NOT NULL DEFAULT 3",
        "ALTER TABLE v_extra.users ADD COLUMN tags jsonb NOT NULL",
    )
    plans = _plans(variant_db, SchemaMap(schema="v_extra"))
    agents = plans["agents"]
    assert agents.dropped == ("updated_at",)
    filled = {f.column: f.value for f in agents.filled}
    assert filled == {"region": "''", "priority": "0", "tier": "'bronze'"}
    assert {f.column for f in plans["users"].filled} == {"tags"}
    assert "optional_note" not in agents.columns and "defaulted" not in agents.columns
    # the transform drops the missing column and appends the fillers, in COPY column order
    row = tuple(range(len(TABLE_COLUMNS["agents"])))
    out = agents.transform(row) if agents.transform else row
    assert len(out) == len(agents.columns)
    assert out[-3:] == ("", 0, "bronze")
    assert TABLE_COLUMNS["agents"].index("updated_at") not in out


def test_unfillable_column_needs_a_pin(variant_db: DatabaseTarget) -> None:
    _variant(variant_db, "v_inet", "ALTER TABLE v_inet.tenants ADD COLUMN ip inet NOT NULL")
    with pytest.raises(SchemaMismatch, match=r"v_inet\.tenants\.ip is NOT NULL .* pin a value"):
        _plans(variant_db, SchemaMap(schema="v_inet"))
    smap = parse_schema_map({"schema": "v_inet", "tables": {"tenants": {"values": {"ip": "10.0.0.1"}}}})
    assert "ip" in _plans(variant_db, smap)["tenants"].columns


def test_renames_and_pins(variant_db: DatabaseTarget) -> None:
    _variant(
        variant_db,
        "v_named",
        "ALTER TABLE v_named.users RENAME COLUMN hashed_password TO password_hash",
        "ALTER TABLE v_named.users RENAME TO accounts",
    )
    smap = parse_schema_map(
        {
            "schema": "v_named",
            "tables": {
                "users": {
                    "name": "accounts",
                    "columns": {"hashed_password": "password_hash"},
                    "values": {"status": "enabled"},
                }
            },
        }
    )
    users = _plans(variant_db, smap)["users"]
    assert users.name == "accounts" and "password_hash" in users.columns
    assert users.columns[-1] == "status"  # pinned: written as a constant, last
    assert users.transform is not None
    out = users.transform(tuple(range(len(TABLE_COLUMNS["users"]))))
    assert out[-1] == "enabled" and len(out) == len(users.columns)
    bad = parse_schema_map(
        {
            "schema": "v_named",
            "tables": {
                "users": {
                    "name": "accounts",
                    "columns": {"hashed_password": "password_hash"},
                    "values": {"is_active": "yes"},
                }
            },
        }
    )
    with pytest.raises(InputError, match="expected true or false"):
        _plans(variant_db, bad)
    typo = parse_schema_map(
        {
            "schema": "v_named",
            "tables": {"users": {"name": "accounts", "columns": {"hashed_pasword": "password_hash"}}},
        }
    )
    with pytest.raises(InputError, match=r"renames column users\.hashed_pasword"):
        _plans(variant_db, typo)


def test_fill_and_coerce_values() -> None:
    assert fill_value(sa.Text(), NOW) == ""
    assert fill_value(sa.BigInteger(), NOW) == 0
    assert fill_value(sa.Boolean(), NOW) is False
    assert fill_value(pg.DOUBLE_PRECISION(), NOW) == 0.0
    assert fill_value(sa.Numeric(), NOW) == decimal.Decimal(0)
    assert fill_value(sa.DateTime(timezone=True), NOW) == NOW
    assert fill_value(sa.DateTime(), NOW).tzinfo is None
    assert fill_value(pg.JSONB(), NOW) == "{}"
    assert fill_value(pg.ARRAY(sa.Text()), NOW) == []
    assert fill_value(pg.UUID(), NOW) == uuid.UUID(int=0)
    with pytest.raises(LookupError):
        fill_value(pg.INET(), NOW)
    assert coerce_value(pg.JSONB(), {"a": [1]}, "t.c") == '{"a": [1]}'
    assert coerce_value(sa.DateTime(timezone=True), "2025-01-02T00:00:00", "t.c").tzinfo is not None
    assert coerce_value(pg.UUID(), str(uuid.UUID(int=5)), "t.c") == uuid.UUID(int=5)
    with pytest.raises(InputError, match=r"pins t\.c to 'x'"):
        coerce_value(sa.Integer(), "x", "t.c")
    with pytest.raises(InputError, match="not one of"):
        coerce_value(sa.Enum("a", "b", name="e"), "c", "t.c")
