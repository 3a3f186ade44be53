"""A run's tenants on hold: the status they carry while ``up`` loads them or ``down`` removes them.

The platform refuses logins to tenants that are not 'active'.  ``up`` writes its tenants
with ``HOLD_STATUS`` (remembering each one's real status) and restores them in the
transaction that marks the run ready; ``down`` sets them to ``HOLD_STATUS`` before its
first delete.  So neither a half-loaded nor a half-deleted tenant ever serves its users.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..schema.reflect import TablePlan
from ..schema.schemamap import SchemaMap
from ..target.copyload import Row, RowTransform
from ..target.identifiers import key_in, qualified_name, quote_identifier
from .ledger import RunRecord

__all__ = [
    "HOLD_STATUS",
    "HeldTenants",
    "TenantsTable",
    "hold_tenants",
    "restore_tenants",
    "stored_tenants_table",
    "take_tenants_offline",
]

HOLD_STATUS = "provisioning"  # not 'active': the platform refuses these tenants' logins

HeldTenants = dict[Any, list[Any]]  # real status -> ids of the tenants written with HOLD_STATUS


@dataclass(frozen=True)
class TenantsTable:
    """Where a run's tenants live: schema, table, key column and status column."""

    schema: str
    name: str
    key_column: str
    status_column: str


def hold_tenants(plan: TablePlan, status_column: str | None, held: HeldTenants) -> RowTransform | None:
    """A row transform writing tenants with ``HOLD_STATUS``; records each one's real status in ``held``.

    None when the tenants table has no status (or no id) column: nothing to hold.
    """
    pos = plan.position(status_column) if status_column else None
    id_pos = plan.position(plan.id_column)
    if pos is None or id_pos is None:
        return None

    def hold(row: Row) -> Row:
        held.setdefault(row[pos], []).append(row[id_pos])
        return (*row[:pos], HOLD_STATUS, *row[pos + 1 :])

    return hold


async def restore_tenants(
    conn: asyncpg.Connection, plan: TablePlan, status_column: str, held: Mapping[Any, Sequence[Any]]
) -> None:
    """Give the held tenants their real status back (in the caller's transaction)."""
    for status, ids in held.items():
        await conn.execute(
            f"UPDATE {plan.qualified} SET {quote_identifier(status_column)} = $1 "
            f"WHERE {quote_identifier(plan.id_column)} = ANY($2::{plan.tenant_array_type})",
            status,
            list(ids),
        )


def stored_tenants_table(run: RunRecord, schema_map: SchemaMap) -> TenantsTable:
    """The tenants table a run was made with (the ledger's settings), else the schema map's."""
    tables = run.settings.get("tables")
    spec = tables.get("tenants") if isinstance(tables, dict) else None
    if isinstance(spec, dict):
        schema, name, key = str(spec["schema"]), str(spec["name"]), str(spec["tenant_column"])
    else:
        schema, name = schema_map.schema, schema_map.table_name("tenants")
        key = schema_map.column_name("tenants", "id")
    return TenantsTable(schema, name, key, schema_map.column_name("tenants", "status"))


async def take_tenants_offline(
    conn: asyncpg.Connection, table: TenantsTable, id_kind: object, ids: Sequence[str]
) -> None:
    """Set the tenants ``ids`` (text) to ``HOLD_STATUS``; skipped when the table lacks either column."""
    present = await conn.fetchval(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 "
        "AND column_name = ANY($3::text[])",
        table.schema,
        table.name,
        [table.status_column, table.key_column],
    )
    if present != 2:
        return
    status = quote_identifier(table.status_column)
    where = key_in(table.key_column, id_kind, "$2")
    await conn.execute(
        f"UPDATE {qualified_name(table.schema, table.name)} SET {status} = $1 "
        f"WHERE {where} AND {status} IS DISTINCT FROM $1",
        HOLD_STATUS,
        list(ids),
    )
