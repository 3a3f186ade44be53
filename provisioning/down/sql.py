"""SQL for teardown, generated from ``fkgraph`` paths.

A path is a chain of many-to-one references from a table up to the tenants table, so
following it joins at most one parent row per row: the statements below never fan out.
Statements take a batch of the run's tenant ids as ``$1`` (text[], cast on the server to
the tenants key type so that the indexes on the tenant columns are used); the checks also
take all of the run's tenant ids as ``$2``.  Anchoring every statement on a small batch
keeps PostgreSQL's plans index-driven: their cost follows the run's rows, not the table's.

Identifiers come from the catalogs and are always quoted (``schemamap.quote_identifier``,
SQLAlchemy's PostgreSQL identifier preparer); no name is pasted into SQL unquoted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..schema.fkgraph import Edge, ForeignKeyGraph, GraphTable, Path, TableRef
from ..target.identifiers import qualified_name, quote_identifier

__all__ = [
    "CHUNK",
    "RUN",
    "check_sql",
    "delete_sql",
    "nullify_sql",
    "path_indexed",
    "path_label",
    "residue_sql",
]

CHUNK = "$1"  # the tenant ids a statement is anchored on (a batch: small, so plans use the indexes)
RUN = "$2"  # all of the run's tenant ids, for the checks' filters


def _qualified(table: TableRef) -> str:
    """``"schema"."table"`` of a graph table."""
    return qualified_name(table.schema, table.name)


@dataclass(frozen=True)
class _Reach:
    """FROM items and conditions that tie the row ``outer`` to a tenant along a path."""

    items: tuple[str, ...]
    conds: tuple[str, ...]

    @property
    def where(self) -> str:
        return " AND ".join(self.conds)


def _anchor(graph: ForeignKeyGraph, column: str, *, as_text: bool, foreign: bool, ids: str) -> str:
    op = "<> ALL" if foreign else "= ANY"
    if as_text:
        return f"{column}::text {op}({ids}::text[])"
    return f"{column} {op}({ids}::text[]::{graph.tenant_key_type}[])"


def _reach(
    graph: ForeignKeyGraph, path: Path, *, outer: str, prefix: str, foreign: bool = False, ids: str = CHUNK
) -> _Reach:
    items: list[str] = []
    conds: list[str] = []
    alias = outer
    for i, edge in enumerate(path):
        last = i == len(path) - 1
        if last and edge.parent == graph.tenants and edge.parent_cols == (graph.tenant_key,):
            column = f"{alias}.{quote_identifier(edge.child_cols[0])}"
            conds.append(_anchor(graph, column, as_text=edge.compare_as_text, foreign=foreign, ids=ids))
            return _Reach(tuple(items), tuple(conds))
        nxt = f"{prefix}{i + 1}"
        items.append(f"{_qualified(edge.parent)} {nxt}")
        pairs = zip(edge.child_cols, edge.parent_cols, strict=True)
        conds.extend(f"{alias}.{quote_identifier(c)} = {nxt}.{quote_identifier(p)}" for c, p in pairs)
        alias = nxt
    key = f"{alias}.{quote_identifier(graph.tenant_key)}"
    conds.append(_anchor(graph, key, as_text=False, foreign=foreign, ids=ids))
    return _Reach(tuple(items), tuple(conds))


def _exists(graph: ForeignKeyGraph, path: Path, *, prefix: str, foreign: bool) -> str:
    r = _reach(graph, path, outer="t0", prefix=prefix, foreign=foreign, ids=RUN)
    if not r.items:
        return f"({r.where})"
    return f"EXISTS (SELECT 1 FROM {', '.join(r.items)} WHERE {r.where})"


def _from(table: GraphTable, r: _Reach) -> str:
    return ", ".join([f"{_qualified(table.table)} t0", *r.items])


def check_sql(graph: ForeignKeyGraph, table: GraphTable, index: int, *, exact: bool = True) -> str:
    """Rows of ``table`` that path ``index`` ties to the tenants in ``$1`` (a batch of the run's).

    ``rows``: how many of them the earlier paths miss (``exact``: all earlier paths, so the
    counts of all paths add up; else only the primary path, enough to tell whether a
    path adds rows).  ``conflicts``: how many of those belong, by their primary path, to
    a tenant outside the run (``$2``: all the run's tenants): another tenant's rows
    referencing the run's rows, which teardown must neither delete nor orphan.
    """
    path = table.paths[index]
    r = _reach(graph, path, outer="t0", prefix="p")
    earlier = table.paths[:index] if exact else table.paths[: min(index, 1)]
    new = (
        " AND ".join(f"{_exists(graph, p, prefix=f'e{k}_', foreign=False)} IS NOT TRUE" for k, p in enumerate(earlier))
        or "TRUE"
    )
    foreign = f"{_exists(graph, table.paths[0], prefix='f_', foreign=True)} IS TRUE" if index else "FALSE"
    return (
        f"SELECT count(*) FILTER (WHERE {new}) AS rows, "
        f"count(*) FILTER (WHERE ({new}) AND {foreign}) AS conflicts "
        f"FROM {_from(table, r)} WHERE {r.where}"
    )


def delete_sql(graph: ForeignKeyGraph, table: GraphTable, path: Path) -> str:
    """``DELETE`` the rows that ``path`` ties to the tenants in ``$1`` (a semi-join along the path)."""
    r = _reach(graph, path, outer="t0", prefix="p")
    using = f" USING {', '.join(r.items)}" if r.items else ""
    return f"DELETE FROM {_qualified(table.table)} t0{using} WHERE {r.where}"


def nullify_sql(graph: ForeignKeyGraph, table: GraphTable, path: Path, edge: Edge) -> str:
    """Cut a foreign-key cycle: set ``edge``'s columns to NULL on the run's rows of ``table``."""
    r = _reach(graph, path, outer="t0", prefix="p")
    sets = ", ".join(f"{quote_identifier(c)} = NULL" for c in edge.child_cols)
    not_null = " OR ".join(f"t0.{quote_identifier(c)} IS NOT NULL" for c in edge.child_cols)
    frm = f" FROM {', '.join(r.items)}" if r.items else ""
    return f"UPDATE {_qualified(table.table)} t0 SET {sets}{frm} WHERE {r.where} AND ({not_null})"


def residue_sql(graph: ForeignKeyGraph, table: GraphTable, path: Path, limit: int = 1000) -> str:
    """How many rows (up to ``limit``) ``path`` still ties to the tenants in ``$1``."""
    r = _reach(graph, path, outer="t0", prefix="p")
    return f"SELECT count(*) FROM (SELECT 1 FROM {_from(table, r)} WHERE {r.where} LIMIT {int(limit)}) s"


def path_indexed(path: Path) -> bool:
    """Every hop of ``path`` can be walked down by an index (the referencing columns' own;
    the referenced side always has its unique index)."""
    return all(e.indexed for e in path)


def path_label(path: Path) -> str:
    """``documents.collection_id → collections.tenant_id → tenants`` for messages and --dry-run."""
    if not path:
        return "tenant id"
    parts = [f"{e.child.display}.{'+'.join(e.child_cols)}" for e in path]
    return " → ".join([*parts, path[-1].parent.display])
