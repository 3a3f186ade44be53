"""Read the live schema: what ``up`` will bind its concepts to, before anything is written.

``reflect_tables`` reflects the platform tables with SQLAlchemy (an async engine and
``run_sync(inspect)``): columns, types, nullability, defaults, primary keys, foreign keys,
indexes, single-column unique keys, the values CHECK constraints allow, and the sequence
behind an integer key.  ``plan_tables`` (``generate/binding.py``) then binds the toolkit's concepts
to those columns; the result, one ``TablePlan`` per contract table, is what the loader
executes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from ..errors import SchemaMismatch
from ..target.resolve import connect
from ..target.url import DatabaseTarget
from .concepts import CONTRACT_TABLES
from .schemamap import SchemaMap
from .tableplan import BoundColumn, FilledColumn, IdKind, LiveColumn, LiveTable, SkippedConcept, TablePlan

__all__ = [
    "BoundColumn",
    "FilledColumn",
    "IdKind",
    "LiveColumn",
    "LiveTable",
    "SkippedConcept",
    "TablePlan",
    "check_values",
    "reflect_tables",
]

_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def check_values(sqltext: str, column: str) -> tuple[str, ...]:
    """The values a CHECK constraint allows ``column`` (``col IN (...)`` / ``col = ANY (ARRAY[...])``), or ()."""
    if not re.search(rf"\(*\b{re.escape(column)}\b\)*(::[\w ]+)?\s*(=\s*ANY|IN)\b", sqltext, re.IGNORECASE):
        return ()
    refs = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b\)*(?:::[\w ]+)?\s*(?:=\s*ANY|IN)\b", sqltext, re.IGNORECASE))
    if refs - {column}:
        return ()  # a constraint over several columns says nothing simple about this one
    return tuple(v.replace("''", "'") for v in _LITERAL.findall(sqltext))


# --------------------------------------------------------------------------- reflection


async def reflect_tables(
    target: DatabaseTarget, schema_map: SchemaMap, tables: Sequence[str] = CONTRACT_TABLES, *, strict: bool = True
) -> dict[str, LiveTable]:
    """Reflect the mapped platform tables; ``SchemaMismatch`` names the first missing one, unless
    ``strict`` is False (the dry run): then missing tables are simply absent from the result."""

    async def creator() -> asyncpg.Connection:
        return await connect(target)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result: dict[str, LiveTable] = await conn.run_sync(_reflect_sync, schema_map, tuple(tables), strict)
            for contract, live in list(result.items()):
                result[contract] = await _with_sequence(conn, live)
            return result
    finally:
        await engine.dispose()


def _reflect_sync(
    sync_conn: sa.Connection, schema_map: SchemaMap, tables: tuple[str, ...], strict: bool = True
) -> dict[str, LiveTable]:
    insp = sa.inspect(sync_conn)
    schema = schema_map.schema
    if schema not in insp.get_schema_names():
        raise SchemaMismatch(
            f"The database has no schema {schema!r} for the platform tables (set 'schema' in the schema map)."
        )
    out: dict[str, LiveTable] = {}
    for contract in tables:
        name = schema_map.table_name(contract)
        if not insp.has_table(name, schema=schema):
            if not strict:
                continue
            mapped = "" if name == contract else f" (the schema map's name for {contract!r})"
            raise SchemaMismatch(
                f"The database has no table {schema}.{name}{mapped}; create the platform's schema first "
                "('provision platform init' makes the reference one) or map the table with --schema-map.",
                table=name,
            )
        cols: dict[str, LiveColumn] = {}
        for c in insp.get_columns(name, schema=schema):
            generated = bool(c.get("computed"))
            has_default = c.get("default") is not None or bool(c.get("identity")) or generated
            cols[c["name"]] = LiveColumn(c["name"], c["type"], bool(c["nullable"]), has_default, generated)
        pk = tuple(insp.get_pk_constraint(name, schema=schema).get("constrained_columns") or ())
        fks = tuple(
            (tuple(fk["constrained_columns"]), fk.get("referred_schema") or schema, fk["referred_table"])
            for fk in insp.get_foreign_keys(name, schema=schema)
        )
        idx = tuple(
            (str(i["name"]), tuple(str(c) for c in i["column_names"] if c))
            for i in insp.get_indexes(name, schema=schema)
        )
        checks: dict[str, tuple[str, ...]] = {}
        for ck in insp.get_check_constraints(name, schema=schema):
            for col in cols:
                values = check_values(str(ck.get("sqltext") or ""), col)
                if values:
                    checks[col] = values
        unique = {str(i["column_names"][0]) for i in insp.get_indexes(name, schema=schema)
                  if i.get("unique") and len(i["column_names"]) == 1}
        unique |= {str(u["column_names"][0]) for u in insp.get_unique_constraints(name, schema=schema)
                   if len(u["column_names"]) == 1}
        out[contract] = LiveTable(schema, name, cols, pk, fks, idx, checks=checks, unique=frozenset(unique) - set(pk))
    return out


async def _with_sequence(conn: Any, live: LiveTable) -> LiveTable:
    if len(live.primary_key) != 1 or not isinstance(live.columns[live.primary_key[0]].type, sa.Integer):
        return live
    seq = (
        await conn.execute(
            sa.text("SELECT pg_get_serial_sequence(format('%I.%I', CAST(:s AS text), CAST(:t AS text)), :c)"),
            {"s": live.schema, "t": live.name, "c": live.primary_key[0]},
        )
    ).scalar()
    if seq is None:
        return live
    return replace(live, sequence=str(seq))
