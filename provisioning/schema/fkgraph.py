"""The foreign-key graph below the tenants table: which tables teardown deletes from, by which
paths their rows reach a tenant, and in which order.

Teardown must find every row that belongs to a run's tenants, including rows in tables
the toolkit never wrote (the platform's conversations, documents, audit rows, ...).  It
trusts the database's own declarations: every table that references the tenants table
directly or through other tables (documents → collections → tenants), plus tables that
carry the configured tenant column (``tenant_id``) without declaring a foreign key.
``fkreflect`` reads those declarations from the live catalogs; this module is pure.

The result, ``ForeignKeyGraph``, lists every reachable table with all the ways
("paths") its rows reach a tenant, in a delete order (children before parents).
Self references are deleted in one statement per batch; a cycle through several tables
is broken at a nullable foreign key (set to NULL on the run's rows first) or reported.
Names in the graph reach SQL only through ``down.sql``, which quotes every one of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..errors import SchemaMismatch
from .schemamap import DEFAULT_SCHEMA, DEFAULT_TENANT_COLUMN

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
]

DEFAULT_TENANTS_TABLE = "tenants"
DEFAULT_TENANTS_SCHEMA = DEFAULT_SCHEMA
MAX_PATH_EDGES = 6
MAX_PATHS_PER_TABLE = 16


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


def _reachable(tenants: TableRef, edges: Sequence[Edge]) -> set[TableRef]:
    """The tenants table and every table whose rows reference it, directly or through others."""
    incoming: dict[TableRef, list[Edge]] = defaultdict(list)
    for e in edges:
        incoming[e.parent].append(e)
    nodes = {tenants}
    queue = [tenants]
    while queue:
        parent = queue.pop()
        for e in incoming.get(parent, ()):
            if e.child not in nodes:
                nodes.add(e.child)
                queue.append(e.child)
    return nodes


def _paths_by_table(
    nodes: set[TableRef], out_edges: dict[TableRef, list[Edge]], tenants: TableRef, warnings: list[str]
) -> tuple[dict[TableRef, list[Path]], dict[TableRef, bool]]:
    """Every table's paths to the tenants table (and whether they were cut short, said in ``warnings``)."""
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
    return paths, truncated


def _edge_findings(edges: Sequence[Edge], notes: list[str], warnings: list[str]) -> None:
    """What the edges tell about teardown: tables found by their tenant column, columns compared
    as text, references no index helps to walk."""
    for e in edges:
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
    nodes = _reachable(tenants, all_edges)
    graph_edges = [e for e in all_edges if e.child in nodes and e.parent in nodes]
    out_edges: dict[TableRef, list[Edge]] = defaultdict(list)
    for e in graph_edges:
        out_edges[e.child].append(e)
    warnings: list[str] = []
    notes: list[str] = []
    paths, truncated = _paths_by_table(nodes, out_edges, tenants, warnings)
    order, broken = _delete_order(nodes, graph_edges, paths)
    tables = [
        GraphTable(
            table=node,
            paths=tuple(paths[node]),
            by_tenant_column=any(not e.declared for e in out_edges.get(node, ())),
            self_edges=tuple(e for e in out_edges.get(node, ()) if e.is_self),
            paths_truncated=truncated[node],
        )
        for node in order
    ]
    _edge_findings(graph_edges, notes, warnings)
    notes.extend(
        f"Table {t.display} has a {tenant_column} column but lies outside schema {tenants.schema}; "
        "teardown leaves it alone."
        for t in ignored
        if t not in nodes
    )
    notes.extend(
        f"Foreign keys form a cycle; teardown first sets {e.display} to NULL on the run's rows." for e in broken
    )
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
