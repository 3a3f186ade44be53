"""Read the live schema and decide, before anything is written, exactly how rows will land.

``reflect_tables`` reflects the platform tables with SQLAlchemy (an async engine and
``run_sync(inspect)``): columns, types, nullability, defaults, primary keys, foreign keys,
indexes, and the sequence behind an integer key.  ``plan_tables`` checks that against
what the generator produces:

- a missing table or column (that is not optional) is a ``SchemaMismatch`` naming it;
- a column the toolkit does not know that is NOT NULL without a default is filled with a
  type-appropriate constant and reported (``FilledColumn``);
- the schema map's renames and pinned values are applied;
- the id kind of each table is read from its key: UUID keys are made client-side,
  integer identity/serial keys are reserved as one block from the table's own sequence
  (see ``sequences.reserve_id_block``).

The result, one ``TablePlan`` per contract table, is what the loader executes.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from typing import Any, Literal

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from .columnvalues import coerce_value, fill_value, type_label
from .copyload import CopyTarget, Row, RowTransform
from .database import connect
from .dburl import DatabaseTarget
from .errors import InputError, SchemaMismatch
from .schema_map import CONTRACT_TABLES, SchemaMap, qualified_name

__all__ = [
    "FilledColumn",
    "IdKind",
    "LiveColumn",
    "LiveTable",
    "TablePlan",
    "plan_tables",
    "reflect_tables",
]

IdKind = Literal["uuid", "integer"]


@dataclass(frozen=True)
class LiveColumn:
    name: str
    type: sa.types.TypeEngine[Any]
    nullable: bool
    has_default: bool  # a server default, an identity, or a generated column
    generated: bool = False


@dataclass(frozen=True)
class LiveTable:
    schema: str
    name: str
    columns: Mapping[str, LiveColumn]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[tuple[tuple[str, ...], str, str], ...]  # (columns, referred schema, referred table)
    indexes: tuple[tuple[str, tuple[str, ...]], ...]
    sequence: str | None = None  # the sequence behind a single integer key (quoted, schema-qualified)

    @property
    def qualified(self) -> str:
        return qualified_name(self.schema, self.name)


@dataclass(frozen=True)
class FilledColumn:
    """A NOT NULL column without a default that the toolkit does not know, filled with ``value``."""

    table: str
    column: str
    type: str
    value: str


@dataclass(frozen=True)
class TablePlan:
    """How one contract table is written: live names, COPY column order, row reshaping, ids."""

    contract: str
    schema: str
    name: str
    columns: tuple[str, ...]
    transform: RowTransform | None
    id_column: str
    id_kind: IdKind
    id_sequence: str | None
    tenant_column: str  # the column holding the tenant id ("id" itself for the tenants table)
    parents: tuple[str, ...]  # contract tables this one references by foreign key
    filled: tuple[FilledColumn, ...] = ()
    dropped: tuple[str, ...] = ()  # optional generator columns the live table lacks
    index_count: int = 0

    @property
    def qualified(self) -> str:
        return qualified_name(self.schema, self.name)

    @property
    def tenant_array_type(self) -> str:
        """The array type for ``tenant_column = ANY($1::...)``: a fixed whitelist, never user text
        (all platform tables share one key kind, checked by ``plan_tables``)."""
        return "uuid[]" if self.id_kind == "uuid" else "bigint[]"

    def position(self, live_column: str) -> int | None:
        """Index of ``live_column`` in the COPY tuple, or None when it is not written."""
        try:
            return self.columns.index(live_column)
        except ValueError:
            return None

    def copy_target(self, transform: RowTransform | None = None) -> CopyTarget:
        return CopyTarget(
            self.contract,
            self.schema,
            self.name,
            self.columns,
            transform if transform is not None else self.transform,
        )


# --------------------------------------------------------------------------- reflection


async def reflect_tables(
    target: DatabaseTarget, schema_map: SchemaMap, tables: Sequence[str] = CONTRACT_TABLES
) -> dict[str, LiveTable]:
    """Reflect the mapped platform tables; ``SchemaMismatch`` names the first missing one."""

    async def creator() -> asyncpg.Connection:
        return await connect(target)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            result: dict[str, LiveTable] = await conn.run_sync(_reflect_sync, schema_map, tuple(tables))
            for contract, live in list(result.items()):
                result[contract] = await _with_sequence(conn, live)
            return result
    finally:
        await engine.dispose()


def _reflect_sync(
    sync_conn: sa.Connection, schema_map: SchemaMap, tables: tuple[str, ...]
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
        out[contract] = LiveTable(schema, name, cols, pk, fks, idx)
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


# --------------------------------------------------------------------------- planning


def _id_kind(contract: str, live: LiveTable, id_column: str) -> tuple[IdKind, str | None]:
    if live.primary_key != (id_column,):
        raise SchemaMismatch(
            f"Table {live.schema}.{live.name} has primary key ({', '.join(live.primary_key) or 'none'}), "
            f"but the toolkit writes its ids into column {id_column!r}; map the column with --schema-map.",
            table=live.name,
            column=id_column,
        )
    t = live.columns[id_column].type
    if isinstance(t, sa.Uuid):
        return "uuid", None
    if isinstance(t, sa.Integer):
        if live.sequence is None:
            raise SchemaMismatch(
                f"Table {live.schema}.{live.name} has an integer key {id_column!r} without an identity "
                "or sequence, so the toolkit cannot take ids from it.",
                table=live.name,
                column=id_column,
            )
        return "integer", live.sequence
    raise SchemaMismatch(
        f"Table {live.schema}.{live.name} has a key {id_column!r} of type {type_label(t)}; "
        "the toolkit supports UUID and integer identity/serial keys.",
        table=live.name,
        column=id_column,
    )


def _make_transform(keep: list[int], width: int, constants: tuple[Any, ...]) -> RowTransform | None:
    """Fast row reshaping: keep some positions (in order), append constants."""
    if keep == list(range(width)):
        if not constants:
            return None

        def append(row: Row) -> Row:
            return row + constants

        return append
    if len(keep) == 1:
        only = keep[0]

        def single(row: Row) -> Row:
            return (row[only], *constants)

        return single
    getter = operator.itemgetter(*keep)

    def pick(row: Row) -> Row:
        return getter(row) + constants  # type: ignore[no-any-return]

    return pick


def _plan_one(
    contract: str,
    stream_columns: Sequence[str],
    live: LiveTable,
    schema_map: SchemaMap,
    optional: AbstractSet[str],
    live_to_contract: Mapping[tuple[str, str], str],
    now: dt.datetime,
) -> TablePlan:
    tmap = schema_map.table(contract)
    where = f"{live.schema}.{live.name}"
    for src in tmap.columns:
        if src not in stream_columns:
            raise InputError(
                f"The schema map renames column {contract}.{src}, which the toolkit does not write; "
                f"it writes {', '.join(stream_columns)}."
            )
    for col in tmap.values:
        if col not in live.columns:
            raise SchemaMismatch(
                f"The schema map pins column {col!r} of table {where}, which has no such column.",
                table=live.name,
                column=col,
            )
    keep: list[int] = []
    names: list[str] = []
    dropped: list[str] = []
    for pos, col in enumerate(stream_columns):
        live_name = tmap.column(col)
        if live_name not in live.columns:
            if col in optional:
                dropped.append(col)
                continue
            raise SchemaMismatch(
                f"Table {where} has no column {live_name!r}, which the toolkit writes"
                + (f" (contract column {col!r})" if live_name != col else "")
                + ".",
                table=live.name,
                column=live_name,
            )
        if live.columns[live_name].generated:
            raise SchemaMismatch(
                f"Column {where}.{live_name} is generated by the database and cannot be written.",
                table=live.name,
                column=live_name,
            )
        if live_name in names:
            raise InputError(f"The schema map makes two columns of {contract} write to {where}.{live_name}.")
        if live_name in tmap.values:
            continue  # pinned: written as a constant below
        keep.append(pos)
        names.append(live_name)
    const_names: list[str] = []
    constants: list[Any] = []
    for col, value in tmap.values.items():
        const_names.append(col)
        constants.append(coerce_value(live.columns[col].type, value, f"{where}.{col}"))
    filled: list[FilledColumn] = []
    written = set(names) | set(const_names)
    for other in live.columns.values():
        if other.name in written or other.nullable or other.has_default:
            continue
        try:
            value = fill_value(other.type, now)
        except LookupError:
            raise SchemaMismatch(
                f"Column {where}.{other.name} is NOT NULL without a default and of type "
                f"{type_label(other.type)}, which the toolkit cannot fill; "
                "pin a value for it in the schema map.",
                table=live.name,
                column=other.name,
            ) from None
        const_names.append(other.name)
        constants.append(value)
        filled.append(FilledColumn(where, other.name, type_label(other.type), repr(value)))
    id_column = tmap.column("id")
    id_kind, seq = _id_kind(contract, live, id_column)
    tenant_column = id_column if contract == "tenants" else tmap.column("tenant_id")
    if tenant_column not in live.columns:
        raise SchemaMismatch(
            f"Table {where} has no tenant column {tenant_column!r}.", table=live.name, column=tenant_column
        )
    parents = sorted(
        {
            live_to_contract[(s, t)]
            for _cols, s, t in live.foreign_keys
            if (s, t) in live_to_contract and live_to_contract[(s, t)] != contract
        }
    )
    return TablePlan(
        contract=contract,
        schema=live.schema,
        name=live.name,
        columns=(*names, *const_names),
        transform=_make_transform(keep, len(stream_columns), tuple(constants)),
        id_column=id_column,
        id_kind=id_kind,
        id_sequence=seq,
        tenant_column=tenant_column,
        parents=tuple(parents),
        filled=tuple(filled),
        dropped=tuple(dropped),
        index_count=len(live.indexes) + 1,
    )


def plan_tables(
    live: Mapping[str, LiveTable],
    stream_columns: Mapping[str, Sequence[str]],
    schema_map: SchemaMap,
    *,
    optional: Mapping[str, AbstractSet[str]] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, TablePlan]:
    """Check the live tables against the generator's columns; one plan per table, parents first."""
    moment = now or dt.datetime.now(dt.UTC)
    live_to_contract = {(t.schema, t.name): c for c, t in live.items()}
    plans: dict[str, TablePlan] = {}
    for contract, cols in stream_columns.items():
        plans[contract] = _plan_one(
            contract,
            cols,
            live[contract],
            schema_map,
            set((optional or {}).get(contract, ())),
            live_to_contract,
            moment,
        )
    kinds = {p.id_kind for p in plans.values()}
    if "tenants" in plans and len(kinds) > 1:
        tk = plans["tenants"].id_kind
        odd = next(p for p in plans.values() if p.id_kind != tk)
        raise SchemaMismatch(
            f"Table {odd.schema}.{odd.name} has {odd.id_kind} keys but {plans['tenants'].name} "
            f"has {tk} keys; the toolkit needs one key kind across the platform tables.",
            table=odd.name,
        )
    return plans
