"""The live schema's foreign keys and tenant columns, read from ``pg_catalog`` into a ``ForeignKeyGraph``.

Why ``pg_catalog`` queries rather than SQLAlchemy's inspector: teardown must reflect on
the very asyncpg connection that holds the run's advisory lock, in a handful of
round trips whatever the number of tables, and it needs facts the inspector does not
give in one call (partitions and inherited constraint clones, ``attnotnull`` of each
foreign-key column, index key positions to tell whether a foreign key is indexed).
Names read from the catalogs are quoted by SQLAlchemy's PostgreSQL identifier preparer
whenever they reach SQL (see ``down.sql``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from ..errors import SchemaMismatch
from .fkgraph import (
    DEFAULT_TENANT_COLUMN,
    DEFAULT_TENANTS_SCHEMA,
    DEFAULT_TENANTS_TABLE,
    Edge,
    ForeignKeyGraph,
    TableRef,
    build_graph,
)

__all__ = ["follows_key_type", "reflect_graph", "type_family"]

_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")

_FK_SQL = """
SELECT c.conname,
       c.conrelid::bigint AS child_oid, cn.nspname AS child_schema, cc.relname AS child_name,
       c.confrelid::bigint AS parent_oid, pn.nspname AS parent_schema, pc.relname AS parent_name,
       c.confdeltype::text AS on_delete, c.conkey::int[] AS child_attnums,
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS child_cols,
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i) AS parent_cols,
       (SELECT bool_and(NOT a.attnotnull) FROM pg_attribute a
         WHERE a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)) AS nullable
  FROM pg_constraint c
  JOIN pg_class cc ON cc.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_class pc ON pc.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
 WHERE c.contype = 'f' AND c.conparentid = 0 AND NOT cc.relispartition
   AND cn.nspname <> ALL($1::text[]) AND cn.nspname NOT LIKE 'pg\\_temp%'
"""

_TENANT_COLUMN_SQL = """
SELECT c.oid::bigint AS oid, n.nspname AS schema, c.relname AS name, a.attnum::int AS attnum,
       format_type(a.atttypid, a.atttypmod) AS type, NOT a.attnotnull AS nullable
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attname = $1 AND a.attnum > 0 AND NOT a.attisdropped
   AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND n.nspname <> ALL($2::text[]) AND n.nspname NOT LIKE 'pg\\_temp%'
"""

_INDEX_SQL = """
SELECT i.indrelid::bigint AS oid, (i.indkey::int2[])[0:i.indnkeyatts - 1]::int[] AS keys
  FROM pg_index i WHERE i.indisvalid AND i.indpred IS NULL AND i.indrelid = ANY($1::oid[])
"""


async def _tenants_table(conn: asyncpg.Connection, schema: str, table: str) -> tuple[TableRef, str, str]:
    row = await conn.fetchrow(
        """SELECT c.oid::bigint AS oid, c.relkind::text AS kind FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2""",
        schema,
        table,
    )
    if row is None or row["kind"] not in ("r", "p"):
        raise SchemaMismatch(f"The database has no tenants table {schema}.{table}.", table=f"{schema}.{table}")
    keys = await conn.fetch(
        """SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type
             FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
            WHERE i.indrelid = $1::bigint::oid AND i.indisprimary""",
        row["oid"],
    )
    if len(keys) != 1:
        raise SchemaMismatch(
            f"The tenants table {schema}.{table} needs a single-column primary key for teardown "
            f"(it has {len(keys) or 'no'} key columns).",
            table=f"{schema}.{table}",
        )
    return TableRef(schema, table, row["oid"]), keys[0]["name"], keys[0]["type"]


class _IndexKeys:
    """The key columns (attnums) of each table's valid, non-partial indexes."""

    def __init__(self, rows: Sequence[asyncpg.Record]) -> None:
        self.keys: dict[int, list[list[int]]] = defaultdict(list)
        for r in rows:
            self.keys[r["oid"]].append(list(r["keys"]))

    def covers(self, oid: int, attnums: Sequence[int]) -> bool:
        """Some index of table ``oid`` starts with exactly these columns (in any order)."""
        want = set(attnums)
        return any(len(k) >= len(want) and set(k[: len(want)]) == want for k in self.keys.get(oid, []))


def _declared_edges(fks: Sequence[asyncpg.Record], indexes: _IndexKeys) -> list[Edge]:
    return [
        Edge(
            name=r["conname"],
            child=TableRef(r["child_schema"], r["child_name"], r["child_oid"]),
            parent=TableRef(r["parent_schema"], r["parent_name"], r["parent_oid"]),
            child_cols=tuple(r["child_cols"]),
            parent_cols=tuple(r["parent_cols"]),
            on_delete=r["on_delete"],
            nullable=bool(r["nullable"]),
            indexed=indexes.covers(r["child_oid"], r["child_attnums"]),
        )
        for r in fks
    ]


def _tenant_column_edges(
    cols: Sequence[asyncpg.Record],
    fks: Sequence[asyncpg.Record],
    tenants: TableRef,
    key: str,
    key_type: str,
    tenant_column: str,
    indexes: _IndexKeys,
) -> tuple[list[Edge], list[str]]:
    """Edges for tenant columns that no foreign key covers, and warnings for those left alone."""
    fk_columns = {(r["child_oid"], n) for r in fks for n in r["child_attnums"]}
    edges: list[Edge] = []
    mismatched: list[str] = []
    for r in cols:
        child = TableRef(r["schema"], r["name"], r["oid"])
        if child == tenants or (r["oid"], r["attnum"]) in fk_columns:
            continue
        if not follows_key_type(r["type"], key_type):
            # a text '7' in some legacy table is not tenant 7: without a foreign key, only the type says so
            mismatched.append(
                f"Table {child.display} has a {tenant_column} column of type {r['type']} but no foreign key, "
                f"and the tenants key is {key_type}; teardown leaves it alone (a column without a foreign key "
                "is followed only when its type fits the key's)."
            )
            continue
        edges.append(
            Edge(
                name=f"{r['name']}.{tenant_column} (no foreign key)",
                child=child,
                parent=tenants,
                child_cols=(tenant_column,),
                parent_cols=(key,),
                declared=False,
                nullable=bool(r["nullable"]),
                indexed=indexes.covers(r["oid"], [r["attnum"]]),
                compare_as_text=r["type"] != key_type,
            )
        )
    return edges, mismatched


async def reflect_graph(
    conn: asyncpg.Connection,
    *,
    tenants_table: str = DEFAULT_TENANTS_TABLE,
    tenants_schema: str = DEFAULT_TENANTS_SCHEMA,
    tenant_column: str = DEFAULT_TENANT_COLUMN,
    exclude_schemas: Sequence[str] = ("provisioning",),
) -> ForeignKeyGraph:
    """Reflect the live schema's foreign keys and tenant columns into a ``ForeignKeyGraph``.

    Tenant-column tables are looked for only in the tenants table's schema: another
    application's ``tenant_id`` in another schema means something else.
    """
    tenants, key, key_type = await _tenants_table(conn, tenants_schema, tenants_table)
    excluded = [*_SYSTEM_SCHEMAS, *exclude_schemas]
    fks = await conn.fetch(_FK_SQL, excluded)
    all_cols = await conn.fetch(_TENANT_COLUMN_SQL, tenant_column, excluded)
    cols = [r for r in all_cols if r["schema"] == tenants_schema]
    elsewhere = sorted(TableRef(r["schema"], r["name"]) for r in all_cols if r["schema"] != tenants_schema)
    oids = sorted({r["child_oid"] for r in fks} | {r["oid"] for r in cols})
    indexes = _IndexKeys(await conn.fetch(_INDEX_SQL, oids))
    column_edges, mismatched = _tenant_column_edges(cols, fks, tenants, key, key_type, tenant_column, indexes)
    edges = [*_declared_edges(fks, indexes), *column_edges]
    graph = build_graph(tenants, key, key_type, edges, tenant_column=tenant_column, ignored=elsewhere)
    return replace(graph, warnings=(*graph.warnings, *mismatched)) if mismatched else graph


_FAMILIES = {"smallint": "integer", "integer": "integer", "bigint": "integer", "text": "text",
             "character varying": "text", "character": "text", "uuid": "uuid"}


def follows_key_type(column_type: str, key_type: str) -> bool:
    """Whether a tenant column without a foreign key may be taken to hold tenant keys: its type
    is of the key's family, or it is a string column and the key a uuid (a uuid's text names one
    tenant anywhere, whereas the text '7' in an unrelated table is not tenant 7)."""
    column, key = type_family(column_type), type_family(key_type)
    return column == key or (key == "uuid" and column == "text")


def type_family(sql_type: str) -> str:
    """The comparable family of a column type (``format_type`` spelling, typmod dropped):
    the integer types are one family, the string types another, uuid its own."""
    base = sql_type.split("(", 1)[0].strip().lower()
    return _FAMILIES.get(base, base)
