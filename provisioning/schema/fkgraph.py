"""The foreign-key graph below the tenants table, reflected from the live schema.

Teardown must find every row that belongs to a run's tenants, including rows in tables
the toolkit never wrote (the platform's conversations, documents, audit rows, ...).  It
trusts the database's own declarations: every table that references the tenants table
directly or through other tables (documents → collections → tenants), plus tables that
carry the configured tenant column (``tenant_id``) without declaring a foreign key.

Why ``pg_catalog`` queries rather than SQLAlchemy's inspector: teardown must reflect on
the very asyncpg connection that holds the run's advisory lock, in a handful of
round trips whatever the number of tables, and it needs facts the inspector does not
give in one call (partitions and inherited constraint clones, ``attnotnull`` of each
foreign-key column, index key positions to tell whether a foreign key is indexed).
Names read from the catalogs are quoted by SQLAlchemy's PostgreSQL identifier preparer
whenever they reach SQL (see ``teardown_sql``).

The result, ``ForeignKeyGraph``, lists every reachable table with all the ways
("paths") its rows reach a tenant, in a delete order (children before parents).
Self references are deleted in one statement per batch; a cycle through several tables
is broken at a nullable foreign key (set to NULL on the run's rows first) or reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import asyncpg

from ..errors import SchemaMismatch

__all__ = [
    "DEFAULT_TENANTS_SCHEMA",
    "DEFAULT_TENANTS_TABLE",
    "DEFAULT_TENANT_COLUMN",
    "Edge",
    "ForeignKeyGraph",
    "GraphTable",
    "Path",
    "TableRef",
    "build_graph",
    "follows_key_type",
    "reflect_graph",
    "type_family",
]

DEFAULT_TENANTS_TABLE = "tenants"
DEFAULT_TENANTS_SCHEMA = "public"
DEFAULT_TENANT_COLUMN = "tenant_id"
MAX_PATH_EDGES = 6
MAX_PATHS_PER_TABLE = 16
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True, order=True)
class TableRef:
    """A table by schema and name (``oid`` is informational; equality uses the names)."""

    schema: str
    name: str
    oid: int = field(default=0, compare=False)

    @property
    def display(self) -> str:
        return self.name if self.schema == "public" else f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Edge:
    """A reference from ``child`` rows to ``parent`` rows: a declared foreign key, or a
    tenant column without one (``declared=False``, always pointing at the tenants key)."""

    name: str
    child: TableRef
    parent: TableRef
    child_cols: tuple[str, ...]
    parent_cols: tuple[str, ...]
    declared: bool = True
    on_delete: str = "a"  # confdeltype: a no action, r restrict, c cascade, n/d set null/default
    nullable: bool = False  # every child column is nullable, so the edge can be cut by SET NULL
    indexed: bool = True  # some index on ``child`` starts with exactly these columns
    compare_as_text: bool = False  # tenant column whose type differs from the tenants key

    @property
    def is_self(self) -> bool:
        return self.child == self.parent

    @property
    def display(self) -> str:
        cols = ", ".join(self.child_cols)
        pcols = ", ".join(self.parent_cols)
        return f"{self.child.display}({cols}) → {self.parent.display}({pcols})"


Path = tuple[Edge, ...]
"""Edges from a table up to the tenants table; ``()`` is the tenants table itself."""


@dataclass(frozen=True)
class GraphTable:
    """A table teardown deletes from, with every path by which its rows reach a tenant.

    ``paths[0]`` is the shortest (the one every delete uses); the others are checked for
    rows the first misses and for rows that also reach a tenant outside the run.
    """

    table: TableRef
    paths: tuple[Path, ...]
    by_tenant_column: bool = False
    self_edges: tuple[Edge, ...] = ()
    paths_truncated: bool = False

    @property
    def multi_path(self) -> bool:
        return len(self.paths) > 1


@dataclass(frozen=True)
class ForeignKeyGraph:
    tenants: TableRef
    tenant_key: str
    tenant_key_type: str
    tenant_column: str
    tables: tuple[GraphTable, ...]  # delete order: children first, the tenants table last
    edges: tuple[Edge, ...]  # every edge between graph tables (foreign keys teardown walks)
    cycle_breaks: tuple[Edge, ...] = ()
    warnings: tuple[str, ...] = ()  # what slows teardown down or limits its checks
    notes: tuple[str, ...] = ()  # what teardown does beyond following declared foreign keys

    @property
    def unindexed(self) -> tuple[Edge, ...]:
        return tuple(e for e in self.edges if not e.indexed)

    @property
    def tenant_column_tables(self) -> tuple[TableRef, ...]:
        return tuple(t.table for t in self.tables if t.by_tenant_column)

    def get(self, display_name: str) -> GraphTable:
        for t in self.tables:
            if display_name in (t.table.display, f"{t.table.schema}.{t.table.name}"):
                return t
        raise KeyError(display_name)


def _path_uses(path: Path, edge: Edge) -> bool:
    return any(e == edge for e in path)


def _enumerate_paths(
    start: TableRef, out_edges: dict[TableRef, list[Edge]], nodes: set[TableRef], tenants: TableRef
) -> tuple[list[Path], bool]:
    found: list[Path] = [()] if start == tenants else []
    truncated = False

    def walk(node: TableRef, visited: frozenset[TableRef], acc: Path) -> None:
        nonlocal truncated
        for e in out_edges.get(node, ()):
            if e.is_self or e.parent not in nodes:
                continue
            if len(found) >= MAX_PATHS_PER_TABLE:
                truncated = True
                return
            if e.parent == tenants:
                found.append((*acc, e))
            elif e.parent not in visited and len(acc) + 1 < MAX_PATH_EDGES:
                walk(e.parent, visited | {e.parent}, (*acc, e))

    walk(start, frozenset({start}), ())
    found.sort(key=lambda p: (len(p), [e.display for e in p]))
    return found, truncated


def _find_cycle(remaining: set[TableRef], deps: dict[TableRef, list[Edge]]) -> list[Edge]:
    """A cycle of edges among ``remaining`` (each edge: child must go before parent)."""
    state: dict[TableRef, int] = {}
    stack: list[Edge] = []

    def dfs(node: TableRef) -> list[Edge] | None:
        state[node] = 1
        for e in deps.get(node, ()):
            nxt = e.parent
            if nxt not in remaining:
                continue
            stack.append(e)
            if state.get(nxt) == 1:
                start = next(i for i, s in enumerate(stack) if s.child == nxt)
                return stack[start:]
            if nxt not in state:
                cycle = dfs(nxt)
                if cycle:
                    return cycle
            stack.pop()
        state[node] = 2
        return None

    for node in sorted(remaining):
        if node not in state:
            cycle = dfs(node)
            if cycle:
                return cycle
    return []


def _delete_order(
    nodes: set[TableRef], edges: Sequence[Edge], paths: dict[TableRef, list[Path]]
) -> tuple[list[TableRef], list[Edge]]:
    """Kahn's order (children before parents); cycles cut at a nullable foreign key whose
    child keeps another path to a tenant, or reported with ``SchemaMismatch``."""
    broken: list[Edge] = []
    while True:
        live = [e for e in edges if not e.is_self and e not in broken]
        deps: dict[TableRef, list[Edge]] = defaultdict(list)  # child -> edges to parents
        waiting: dict[TableRef, int] = dict.fromkeys(nodes, 0)  # parent -> children not yet placed
        for e in live:
            deps[e.child].append(e)
            waiting[e.parent] += 1
        order: list[TableRef] = []
        ready = sorted(n for n in nodes if waiting[n] == 0)
        while ready:
            node = ready.pop(0)
            order.append(node)
            for e in deps.get(node, ()):
                waiting[e.parent] -= 1
                if waiting[e.parent] == 0:
                    ready.append(e.parent)
                    ready.sort()
        if len(order) == len(nodes):
            return order, broken
        remaining = nodes - set(order)
        cycle = _find_cycle(remaining, deps)
        cut = next(
            (
                e
                for e in sorted(cycle, key=lambda e: e.display)
                if e.declared and e.nullable and any(not _path_uses(p, e) for p in paths.get(e.child, []))
            ),
            None,
        )
        if cut is None:
            names = " → ".join([e.child.display for e in cycle] + [cycle[0].child.display]) if cycle else ""
            raise SchemaMismatch(
                f"Tables {names} reference each other through NOT NULL foreign keys, so teardown cannot "
                "order their deletes; make one of those keys nullable or deferrable.",
                table=cycle[0].child.display if cycle else None,
            )
        broken.append(cut)


def build_graph(
    tenants: TableRef,
    tenant_key: str,
    tenant_key_type: str,
    edges: Iterable[Edge],
    *,
    tenant_column: str = DEFAULT_TENANT_COLUMN,
    ignored: Sequence[TableRef] = (),
) -> ForeignKeyGraph:
    """The graph of everything below ``tenants`` (pure: ``edges`` include the tenant-column edges;
    ``ignored`` are tables with the tenant column outside the tenants table's schema)."""
    all_edges = sorted(set(edges), key=lambda e: (e.child, e.name))
    incoming: dict[TableRef, list[Edge]] = defaultdict(list)
    for e in all_edges:
        incoming[e.parent].append(e)
    nodes = {tenants}
    queue = [tenants]
    while queue:
        parent = queue.pop()
        for e in incoming.get(parent, ()):
            if e.child not in nodes:
                nodes.add(e.child)
                queue.append(e.child)
    graph_edges = [e for e in all_edges if e.child in nodes and e.parent in nodes]
    out_edges: dict[TableRef, list[Edge]] = defaultdict(list)
    for e in graph_edges:
        out_edges[e.child].append(e)

    warnings: list[str] = []
    paths: dict[TableRef, list[Path]] = {}
    truncated: dict[TableRef, bool] = {}
    for node in nodes:
        found, cut = _enumerate_paths(node, out_edges, nodes, tenants)
        selfs = [e for e in out_edges.get(node, ()) if e.is_self]
        if found:  # a self reference makes "rows that point at a run row of this table" one more path
            found.extend((s, *found[0]) for s in selfs)
        paths[node], truncated[node] = found, cut
        if cut:
            warnings.append(
                f"Table {node.display} reaches the tenants table by more than {MAX_PATHS_PER_TABLE} paths; "
                "only the shortest are checked."
            )

    order, broken = _delete_order(nodes, graph_edges, paths)
    tables = []
    for node in order:
        tables.append(
            GraphTable(
                table=node,
                paths=tuple(paths[node]),
                by_tenant_column=any(not e.declared for e in out_edges.get(node, ())),
                self_edges=tuple(e for e in out_edges.get(node, ()) if e.is_self),
                paths_truncated=truncated[node],
            )
        )
    notes: list[str] = []
    for e in graph_edges:
        if not e.declared:
            notes.append(
                f"Table {e.child.display} has a {e.child_cols[0]} column but no foreign key; "
                "teardown includes it by that column."
            )
            if e.compare_as_text:
                warnings.append(
                    f"Column {e.child.display}.{e.child_cols[0]} is compared as text: its type differs from "
                    "the tenants key, so no index helps."
                )
        if not e.indexed:
            what = f"foreign key {e.name}" if e.declared else "tenant column"
            warnings.append(
                f"No index on {e.child.display}({', '.join(e.child_cols)}), which teardown walks ({what}); "
                "deletes there scan the whole table."
            )
    for t in ignored:
        if t not in nodes:
            notes.append(
                f"Table {t.display} has a {tenant_column} column but lies outside schema {tenants.schema}; "
                "teardown leaves it alone."
            )
    for e in broken:
        notes.append(f"Foreign keys form a cycle; teardown first sets {e.display} to NULL on the run's rows.")
    return ForeignKeyGraph(
        tenants=tenants,
        tenant_key=tenant_key,
        tenant_key_type=tenant_key_type,
        tenant_column=tenant_column,
        tables=tuple(tables),
        edges=tuple(graph_edges),
        cycle_breaks=tuple(broken),
        warnings=tuple(warnings),
        notes=tuple(notes),
    )


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
    index_keys: dict[int, list[list[int]]] = defaultdict(list)
    for r in await conn.fetch(_INDEX_SQL, oids):
        index_keys[r["oid"]].append(list(r["keys"]))

    def indexed(oid: int, attnums: Sequence[int]) -> bool:
        want = set(attnums)
        return any(len(k) >= len(want) and set(k[: len(want)]) == want for k in index_keys.get(oid, []))

    edges: list[Edge] = []
    fk_columns: set[tuple[int, int]] = set()
    for r in fks:
        fk_columns.update((r["child_oid"], n) for n in r["child_attnums"])
        edges.append(
            Edge(
                name=r["conname"],
                child=TableRef(r["child_schema"], r["child_name"], r["child_oid"]),
                parent=TableRef(r["parent_schema"], r["parent_name"], r["parent_oid"]),
                child_cols=tuple(r["child_cols"]),
                parent_cols=tuple(r["parent_cols"]),
                on_delete=r["on_delete"],
                nullable=bool(r["nullable"]),
                indexed=indexed(r["child_oid"], r["child_attnums"]),
            )
        )
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
                indexed=indexed(r["oid"], [r["attnum"]]),
                compare_as_text=r["type"] != key_type,
            )
        )
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
