"""Bind the toolkit's concepts (``concepts.py``) to a reflected table: what is written, from what, and why not.

For each concept of a contract table, in the table of concepts' order, every spelling the
live table has is bound (only the first for an *exclusive* concept) to the builder fields
that feed it; the schema map's renames, skips, pins and value renames apply first.  What
comes out, per table, is a ``TablePlan``: the COPY columns, a projection from the
builder's tuples (precomputed positions, constants appended, value renames as a per-column
lookup), and for the dry run every column's provenance, the skipped concepts and the
filled columns.

Problems are *collected*, not raised one by one: ``bind_tables`` returns every one of them
(the dry run lists them all), ``plan_tables`` raises them together in one exception.
Only the essential concepts are errors when absent; so are columns of the wrong type,
CHECK constraints that refuse the values the toolkit writes, generated columns, unknown
NOT NULL columns nothing can fill, and schema-map entries that make no sense.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from ..errors import InputError, ProvisionError, SchemaMismatch
from ..schema.concepts import CONCEPTS, CONTRACT_TABLES, FIELD_KINDS, VOCABULARIES, fill_by_name, flavour_of
from ..schema.schemamap import SchemaMap, TableMap
from ..schema.tableplan import BoundColumn, FilledColumn, IdKind, LiveTable, SkippedConcept, TablePlan
from ..target.copyload import Row, RowTransform
from .columnvalues import coerce_value, fill_value, type_label
from .rowbase import EXTRA_FIELDS, FIELDS, TABLE_COLUMNS

__all__ = ["bind_table", "bind_tables", "column_kind", "dataset_options", "make_transform", "plan_tables",
           "raise_problems"]

#: Which live column families take which builder field kinds.
_ACCEPTS: Mapping[str, frozenset[str]] = {
    "id": frozenset({"uuid", "int"}), "ref": frozenset({"uuid", "int"}), "text": frozenset({"text"}),
    "bool": frozenset({"bool"}), "int": frozenset({"int", "float"}), "float": frozenset({"float"}),
    "json": frozenset({"json", "text"}), "ts": frozenset({"ts"}),
}
_KIND_WORDS = {"id": "a key", "ref": "a key", "text": "text", "bool": "a boolean", "int": "an integer",
               "float": "a number", "json": "JSON", "ts": "a timestamp"}


def column_kind(t: sa.types.TypeEngine[Any]) -> str:
    """The family of a live column's type: bool, int, float, json, ts, uuid, text, or other."""
    if isinstance(t, sa.Boolean):
        return "bool"
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Float | sa.Numeric):
        return "float"
    if isinstance(t, sa.JSON):
        return "json"
    if isinstance(t, sa.DateTime):
        return "ts"
    if isinstance(t, sa.Uuid):
        return "uuid"
    if isinstance(t, sa.String):
        return "text"
    return "other"


def _allowed(live: LiveTable, column: str) -> tuple[str, ...]:
    """Values the database allows in ``column``: an enum's labels or a CHECK's list (() if unrestricted)."""
    t = live.columns[column].type
    if isinstance(t, sa.Enum) and t.enums:
        return tuple(t.enums)
    return live.checks.get(column, ())


class _Binder:
    """Binds one table; problems go to ``problems``, the plan comes from ``plan()``."""

    def __init__(self, contract: str, live: LiveTable, tmap: TableMap, problems: list[ProvisionError]) -> None:
        self.contract, self.live, self.tmap, self.problems = contract, live, tmap, problems
        self.where = f"{live.schema}.{live.name}"
        self.bound: dict[str, BoundColumn] = {}  # live column → provenance (concept-bound only)
        self.skipped: list[SkippedConcept] = []
        self.concept_columns: dict[str, tuple[str, ...]] = {}
        self.known = {c for concept in CONCEPTS[contract] for sp in concept.spellings for c in sp.columns}

    def error(self, message: str, column: str | None = None, *, input_error: bool = False) -> None:
        if input_error:
            self.problems.append(InputError(message))
        else:
            self.problems.append(SchemaMismatch(message, table=self.live.name, column=column))

    def present(self, column: str) -> bool:
        return column not in self.tmap.skip and self.tmap.column(column) in self.live.columns

    def check_map(self) -> None:
        tm, contract = self.tmap, self.contract
        known = ", ".join(sorted(self.known))
        for src in tm.columns:
            if src not in self.known:
                self.error(f"The schema map renames column {contract}.{src}, which the toolkit does not know; "
                           f"it knows {known}.", input_error=True)
        for col in tm.skip:
            if col not in self.known:
                self.error(f"The schema map skips column {contract}.{col}, which the toolkit does not know; "
                           f"it knows {known}.", input_error=True)
        for col in tm.values:
            if col not in self.live.columns:
                self.error(f"The schema map pins column {col!r} of table {self.where}, which has no such column.",
                           col)
        for src, dst in tm.columns.items():
            if dst in tm.values and src != dst:
                self.error(f"The schema map both renames {contract}.{src} onto column {dst!r} of {self.where} "
                           f"and pins {dst!r} to {tm.values[dst]!r}; keep one of the two.", input_error=True)

    def bind_concepts(self, flavour: str) -> None:
        kinds = FIELD_KINDS[self.contract]
        for concept in CONCEPTS[self.contract]:
            matched: list[str] = []
            for sp in concept.spellings:
                if not all(self.present(c) for c in sp.columns):
                    continue
                names = tuple(self.tmap.column(c) for c in sp.columns)
                if any(n in self.bound for n in names):
                    matched.extend(n for n in names if n in self.bound)
                    continue  # already written by an earlier concept or spelling
                for n, f in zip(names, sp.fields_for(flavour), strict=True):
                    matched.append(n)
                    if n in self.tmap.values:
                        continue  # the pin wins (check_map refused a pin on a rename target)
                    if self.type_fits(n, kinds[f], concept.name):
                        self.bound[n] = BoundColumn(n, "concept", concept.name, sp.name, f)
                if concept.exclusive:
                    break
            if matched:
                self.concept_columns[concept.name] = tuple(dict.fromkeys(matched))
                continue
            skipped = any(c in self.tmap.skip for sp in concept.spellings for c in sp.columns)
            if concept.essential and not skipped:
                looked = " | ".join("+".join(self.tmap.column(c) for c in sp.columns) for sp in concept.spellings)
                self.error(f"Table {self.where} has no column for the {_essential_name(concept.name)}, which the "
                           f"toolkit needs: it looked for {looked}; map one with --schema-map.",
                           self.tmap.column(concept.spellings[0].columns[0]))
            else:
                self.skipped.append(SkippedConcept(concept.name, concept.looked_for,
                                                   "skipped by the schema map" if skipped else "absent"))

    def type_fits(self, column: str, kind: str, concept: str) -> bool:
        col = self.live.columns[column]
        if col.generated:
            self.error(f"Column {self.where}.{column} is generated by the database and cannot be written.", column)
            return False
        family = column_kind(col.type)
        if family not in _ACCEPTS[kind]:
            self.error(f"Column {self.where}.{column} is {type_label(col.type)}, but the toolkit writes "
                       f"{_KIND_WORDS[kind]} there (concept {concept}); map another column onto it, skip it "
                       "or pin a value with --schema-map.", column)
            return False
        return True

    def check_vocabularies(self) -> None:
        for col, mapping in self.tmap.vocab.items():
            b = self.bound.get(col)
            vocab = VOCABULARIES.get((self.contract, b.field)) if b else None
            if vocab is None:
                self.error(f"The schema map renames values of {self.where}.{col}, which the toolkit does not "
                           "write from a vocabulary.", input_error=True)
                continue
            unknown = sorted(set(mapping) - set(vocab))
            if unknown:
                self.error(f"The schema map renames value {unknown[0]!r} of {self.where}.{col}, which the "
                           f"toolkit never writes there; it writes {', '.join(vocab)}.", input_error=True)
        for col, b in self.bound.items():
            vocab = VOCABULARIES.get((self.contract, b.field))
            allowed = _allowed(self.live, col) if vocab else ()
            if not vocab or not allowed:
                continue
            mapping = self.tmap.vocab.get(col, {})
            refused = [v for v in (mapping.get(x, x) for x in vocab) if v not in allowed]
            if refused:
                self.error(f"Column {self.where}.{col} allows only {', '.join(allowed)}, but the toolkit writes "
                           f"{', '.join(refused)} there; rename them with [tables.{self.contract}.vocab] "
                           "in the schema map.", col)

    def fills(self, now: dt.datetime) -> list[tuple[BoundColumn, Any, FilledColumn | None]]:
        out: list[tuple[BoundColumn, Any, FilledColumn | None]] = []
        for col, value in self.tmap.values.items():
            if col not in self.live.columns:
                continue
            try:
                out.append((BoundColumn(col, "pinned", note="the schema map's value"),
                            coerce_value(self.live.columns[col].type, value, f"{self.where}.{col}"), None))
            except InputError as exc:
                self.problems.append(exc)
        for other in self.live.columns.values():
            name = other.name
            if name in self.bound or name in self.tmap.values or other.nullable or other.has_default:
                continue
            filled = self.fill(name, now)
            if filled is not None:
                out.append(filled)
        return out

    def fill(self, name: str, now: dt.datetime) -> tuple[BoundColumn, Any, FilledColumn] | None:
        col = self.live.columns[name]
        if col.generated:
            return None
        if name in self.live.unique:
            self.error(f"Column {self.where}.{name} is NOT NULL and unique without a default, and the toolkit "
                       "does not know it, so no constant can fill it; map a known column onto it with "
                       "--schema-map.", name)
            return None
        by_name = fill_by_name(self.contract, name, column_kind(col.type), _allowed(self.live, name))
        if by_name is not None:
            value, why = by_name
        else:
            try:
                value, why = fill_value(col.type, now), "by type"
            except LookupError:
                self.error(f"Column {self.where}.{name} is NOT NULL without a default and of type "
                           f"{type_label(col.type)}, which the toolkit cannot fill; pin a value for it in the "
                           "schema map.", name)
                return None
        label = type_label(col.type)
        return (BoundColumn(name, "filled", note=why), value, FilledColumn(self.where, name, label, repr(value)))


def _essential_name(concept: str) -> str:
    return {"id": "primary key", "tenant_id": "tenant key", "email": "login email",
            "password_hash": "password hash"}.get(concept, concept)


def _id_kind(binder: _Binder, id_column: str) -> tuple[IdKind, str | None] | None:
    live = binder.live
    if id_column not in live.columns:
        return None  # reported as a missing essential
    if live.primary_key != (id_column,):
        binder.error(f"Table {binder.where} has primary key ({', '.join(live.primary_key) or 'none'}), but the "
                     f"toolkit writes its ids into column {id_column!r}; map the column with --schema-map.",
                     id_column)
        return None
    t = live.columns[id_column].type
    if isinstance(t, sa.Uuid):
        return "uuid", None
    if isinstance(t, sa.Integer):
        if live.sequence is None:
            binder.error(f"Table {binder.where} has an integer key {id_column!r} without an identity or "
                         "sequence, so the toolkit cannot take ids from it.", id_column)
            return None
        return "integer", live.sequence
    binder.error(f"Table {binder.where} has a key {id_column!r} of type {type_label(t)}; the toolkit supports "
                 "UUID and integer identity/serial keys.", id_column)
    return None


def make_transform(keep: list[int], width: int, constants: tuple[Any, ...],
                   vocab: Mapping[int, Mapping[str, str]] | None = None) -> RowTransform | None:
    """Fast row reshaping: keep some positions (in order), append constants, rename vocabulary values."""
    base: RowTransform | None
    if keep == list(range(width)):
        base = None if not constants else (lambda row: row + constants)
    elif len(keep) == 1:
        only = keep[0]
        base = lambda row: (row[only], *constants)  # noqa: E731
    else:
        getter = operator.itemgetter(*keep)
        base = lambda row: getter(row) + constants  # noqa: E731
    if not vocab:
        return base
    lookups = tuple((pos, m.get) for pos, m in vocab.items())
    first: Callable[[Row], Row] = base if base is not None else (lambda row: row)

    def renamed(row: Row) -> Row:
        out = list(first(row))
        for pos, get in lookups:
            out[pos] = get(out[pos], out[pos])
        return tuple(out)

    return renamed


def bind_table(contract: str, live: LiveTable, schema_map: SchemaMap, contract_of: Mapping[tuple[str, str], str],
               now: dt.datetime, problems: list[ProvisionError]) -> TablePlan | None:
    """The plan of one table, also when it has problems (the dry run shows what it could bind); None only
    when there is no usable key.  Problems are appended."""
    b = _Binder(contract, live, schema_map.table(contract), problems)
    b.check_map()
    flavour, why = flavour_of(contract, b.present)
    b.bind_concepts(flavour)
    b.check_vocabularies()
    extras = b.fills(now)
    id_column = b.tmap.column("id")
    ids = _id_kind(b, id_column)
    tenant_column = id_column if contract == "tenants" else b.tmap.column("tenant_id")
    if ids is None:
        return None
    extended = any(c.field in EXTRA_FIELDS[contract] for c in b.bound.values())
    stream = FIELDS[contract] if extended else TABLE_COLUMNS[contract]
    concept_cols = sorted(b.bound.values(), key=lambda c: stream.index(c.field))
    names = [c.column for c in concept_cols]
    keep = [stream.index(c.field) for c in concept_cols]
    constants = tuple(value for _, value, _ in extras)
    columns = (*names, *(bc.column for bc, _, _ in extras))
    vocab = {columns.index(col): m for col, m in b.tmap.vocab.items() if col in names}
    parents = sorted({contract_of[(s, t)] for _c, s, t in live.foreign_keys
                      if (s, t) in contract_of and contract_of[(s, t)] != contract})
    guide = set(TABLE_COLUMNS[contract])
    return TablePlan(
        contract=contract, schema=live.schema, name=live.name, columns=columns,
        transform=make_transform(keep, len(stream), constants, vocab),
        id_column=id_column, id_kind=ids[0], id_sequence=ids[1], tenant_column=tenant_column,
        parents=tuple(parents), filled=tuple(f for _, _, f in extras if f is not None),
        dropped=tuple(s.concept for s in b.skipped if s.concept in guide), index_count=len(live.indexes) + 1,
        bound=(*concept_cols, *(bc for bc, _, _ in extras)), skipped=tuple(b.skipped),
        flavour=flavour, flavour_reason=why, extended=extended, concept_columns=dict(b.concept_columns),
        vocab={col: dict(m) for col, m in b.tmap.vocab.items() if col in names},
    )


def bind_tables(live: Mapping[str, LiveTable], schema_map: SchemaMap, *, now: dt.datetime | None = None
                ) -> tuple[dict[str, TablePlan], list[ProvisionError]]:
    """Plans for every table that could be planned, and every problem found (all of them, in table order)."""
    moment = now or dt.datetime.now(dt.UTC)
    contract_of = {(t.schema, t.name): c for c, t in live.items()}
    problems: list[ProvisionError] = []
    plans: dict[str, TablePlan] = {}
    for contract in CONTRACT_TABLES:
        table = live.get(contract)
        if table is None:
            name = schema_map.table_name(contract)
            mapped = "" if name == contract else f" (the schema map's name for {contract!r})"
            problems.append(SchemaMismatch(
                f"The database has no table {schema_map.schema}.{name}{mapped}; create the platform's schema "
                "first ('provision platform init' makes the reference one) or map the table with --schema-map.",
                table=name))
            continue
        plan = bind_table(contract, table, schema_map, contract_of, moment, problems)
        if plan is not None:
            plans[contract] = plan
    kinds = {p.id_kind for p in plans.values()}
    if "tenants" in plans and len(kinds) > 1:
        tk = plans["tenants"].id_kind
        odd = next(p for p in plans.values() if p.id_kind != tk)
        problems.append(SchemaMismatch(
            f"Table {odd.schema}.{odd.name} has {odd.id_kind} keys but {plans['tenants'].name} has {tk} keys; "
            "the toolkit needs one key kind across the platform tables.", table=odd.name))
    return plans, problems


def raise_problems(problems: list[ProvisionError]) -> None:
    """Raise the problems as one error: the first one's kind and exit code, every sentence in its message."""
    if not problems:
        return
    first = problems[0]
    if len(problems) == 1:
        raise first
    more = " ".join(f"({k}) {p.message}" for k, p in enumerate(problems[1:], start=2))
    message = f"{first.message} And {len(problems) - 1} more: {more}"
    if isinstance(first, SchemaMismatch):
        raise SchemaMismatch(message, table=first.table, column=first.column)
    raise type(first)(message)


def plan_tables(live: Mapping[str, LiveTable], schema_map: SchemaMap, *, now: dt.datetime | None = None
                ) -> dict[str, TablePlan]:
    """Bind every table; raise every problem at once (``raise_problems``) if there is any."""
    plans, problems = bind_tables(live, schema_map, now=now)
    raise_problems(problems)
    return plans


def dataset_options(plans: Mapping[str, TablePlan]) -> dict[str, Any]:
    """What the ``Dataset`` must generate for these plans: the extended tables, the users' role field and
    the role renames the schema map applies (so the credentials show roles as the database holds them)."""
    users = plans.get("users")
    role = next((c for c in users.bound if c.concept == "role"), None) if users else None
    return {"extended": frozenset(t for t, p in plans.items() if p.extended),
            "role_field": role.field if role else "role",
            "role_names": dict(users.vocab.get(role.column, {})) if users and role else {}}
