"""What reflection saw of a live table, and the plan for writing one contract table into it.

``LiveTable`` is the reflected table (columns, keys, foreign keys, indexes, CHECK
vocabularies); ``TablePlan`` is what the binding of the concepts (``binding.py``) decided:
the COPY column order, the row projection from the builder's fields, the ids, and for the
dry run, where every written column comes from and what was skipped or filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from ..target.copyload import CopyTarget, RowTransform
from ..target.identifiers import KEY_ARRAY_TYPES, qualified_name

__all__ = ["BoundColumn", "FilledColumn", "IdKind", "LiveColumn", "LiveTable", "SkippedConcept", "TablePlan"]

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
    checks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # column → values a CHECK allows
    unique: frozenset[str] = frozenset()  # columns with a single-column unique index or constraint

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
class BoundColumn:
    """A written column and where its values come from.

    ``source``: "concept" (``concept`` via ``spelling``, from builder field ``field``),
    "pinned" (the schema map's value) or "filled" (an unknown NOT NULL column).
    """

    column: str
    source: str
    concept: str = ""
    spelling: str = ""
    field: str = ""
    note: str = ""


@dataclass(frozen=True)
class SkippedConcept:
    """A concept none of whose spellings the live table has (or the schema map skipped)."""

    concept: str
    looked_for: str
    reason: str = "absent"


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
    dropped: tuple[str, ...] = ()  # columns of the guide's set the live table lacks (skipped concepts)
    index_count: int = 0
    bound: tuple[BoundColumn, ...] = ()
    skipped: tuple[SkippedConcept, ...] = ()
    flavour: str = "guide"
    flavour_reason: str = ""
    extended: bool = False  # the builder's rows carry the extra fields
    concept_columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    vocab: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # column → value renames applied

    def concept_column(self, concept: str) -> str | None:
        """The first live column a concept is written to (None when it is not)."""
        cols = self.concept_columns.get(concept)
        return cols[0] if cols else None

    @property
    def qualified(self) -> str:
        return qualified_name(self.schema, self.name)

    @property
    def tenant_array_type(self) -> str:
        """The array type for ``tenant_column = ANY($1::...)``: a fixed whitelist, never user text
        (all platform tables share one key kind, checked by ``plan_tables``)."""
        return KEY_ARRAY_TYPES[self.id_kind]

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
