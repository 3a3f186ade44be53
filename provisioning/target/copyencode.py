"""A binary COPY stream written in Python, for the column types the toolkit writes.

Why: asyncpg encodes a row value by value, each through its codec's dispatch; most of
the values ``up`` writes repeat (pool values, tenant ids, statuses), so their encoded
field (length + bytes) can be made once and reused, and a batch assembled with one
``bytes.join``.  The encoder is built from the live column types (the type OIDs the
server reports for ``SELECT columns FROM table LIMIT 0``, as asyncpg itself reads
them): a domain is reported as its base type, so its constraints stay the server's
business.  A type it does not know (numeric, enums, pgvector's ``vector``, composites,
arrays of those) makes ``row_encoder`` return None, and the caller copies that table
with asyncpg's own encoder: never a guess at someone else's wire format.

The fields themselves are ``copyfields``'s.  A value of a Python type the fast path does
not take goes through ``copyfields``'s per-value path, which accepts what asyncpg accepts;
what neither takes raises ``asyncpg.DataError`` naming the column.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from .copyfields import (
    ARRAY_ELEMENTS,
    BOOL_FIELDS,
    F4,
    F8,
    I2,
    I4,
    I8,
    LEN,
    NULL,
    PG_EPOCH,
    SCALAR_KINDS,
    US,
    bool_field,
    field_encoder,
)
from .identifiers import qualified_name, quote_identifier

__all__ = [
    "COPY_HEADER",
    "COPY_TRAILER",
    "ColumnType",
    "RowEncoder",
    "column_kinds",
    "column_types",
    "row_encoder",
]

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
COPY_TRAILER = b"\xff\xff"
CACHE_LIMIT = 8192  # encoded fields remembered per column (repeated values only pay once)


@dataclass(frozen=True)
class ColumnType:
    """A target column and the type the server reports for it (a domain's base type)."""

    name: str
    oid: int
    type_name: str


async def column_types(
    conn: asyncpg.Connection, schema: str, table: str, columns: Sequence[str]
) -> list[ColumnType]:
    """The live types of ``columns`` of ``schema.table``, read once per COPY (no rows read)."""

    stmt = await conn.prepare(
        f"SELECT {', '.join(quote_identifier(c) for c in columns)} FROM {qualified_name(schema, table)} LIMIT 0"
    )
    return [ColumnType(c, a.type.oid, a.type.name) for c, a in zip(columns, stmt.get_attributes(), strict=True)]


def column_kinds(columns: Sequence[ColumnType]) -> list[str] | None:
    """The scalar kind of each column (``copyfields.SCALAR_KINDS``), or None when one is of another type."""
    kinds = [SCALAR_KINDS.get(c.oid) for c in columns]
    return None if None in kinds else kinds  # type: ignore[return-value]


def _cached(field: Callable[[Any], bytes], cache: dict[Any, bytes]) -> Callable[[Any], bytes]:
    """``field`` that remembers up to ``CACHE_LIMIT`` results (repeated pool values pay once)."""

    def encode(value: Any) -> bytes:
        encoded = field(value)
        if len(cache) < CACHE_LIMIT:
            cache[value] = encoded
        return encoded

    return encode


def _snippet(i: int, kind: str, cached: bool) -> list[str]:
    """Generated code that appends column ``i``'s field of value ``v{i}`` (None → NULL).

    Text-like values are looked up in the column's cache first (repeated pool values are
    encoded once), and a miss is encoded inline: a function call per field costs as much
    as the encoding.  Whatever the inline code does not take raises, and ``encode`` redoes
    the batch on the per-value path.
    """
    v, c = f"v{i}", f"c{i}"
    text = {"text": "", "json": "", "jsonb": "b'\\x01' + "}
    if kind in text and not cached:  # a column of distinct values: no lookups, no concatenation
        return [
            f"if {v} is None: a(NULL)",
            "else:",
            f"    b = {text[kind]}{v}.encode()",
            "    a(LEN(len(b)))",
            "    a(b)",
        ]
    if kind in text:
        return [
            f"if {v} is None: a(NULL)",
            "else:",
            f"    f = {c}.get({v})",
            "    if f is None:",
            f"        b = {text[kind]}{v}.encode()",
            "        f = LEN(len(b)) + b",
            f"        if len({c}) < LIMIT: {c}[{v}] = f",
            "    a(f)",
        ]
    if kind == "uuid" and not cached:
        return [
            f"if {v} is None: a(NULL)",
            "else:",
            f"    f = U16 + fromhex({v}.replace('-', ''))",
            f"    if len(f) != 20: raise ValueError({v})",
            "    a(f)",
        ]
    if kind == "uuid":
        return [
            f"if {v} is None: a(NULL)",
            "else:",
            f"    f = {c}.get({v})",
            "    if f is None:",
            f"        f = U16 + fromhex({v}.replace('-', ''))",
            f"        if len(f) != 20: raise ValueError({v})",
            f"        if len({c}) < LIMIT: {c}[{v}] = f",
            "    a(f)",
        ]
    if kind == "bytea":
        return [f"if {v} is None: a(NULL)", f"else: a({c}.get({v}) or m{i}({v}))"]
    pack = {"int2": "I2", "int4": "I4", "int8": "I8", "float4": "F4", "float8": "F8"}.get(kind)
    if pack is not None:
        width = {"I2": 2, "I4": 4, "I8": 8, "F4": 4, "F8": 8}[pack]
        return [f"if {v} is None: a(NULL)", f"else: a({pack}({width}, {v}))"]
    if kind == "bool":
        return [f"a(TRUE if {v} is True else FALSE if {v} is False else NULL if {v} is None else bad({v}))"]
    if kind == "timestamptz":
        return [f"if {v} is None: a(NULL)", f"else: a(I8(8, ({v} - EPOCH) // US))"]
    return [f"if {v} is None: a(NULL)", f"else: a(f{i}({v}))"]  # per value (dates, arrays, naive timestamps)


class RowEncoder:
    """Encodes batches of row tuples of one table into binary COPY tuples (no header/trailer).

    Every column starts cached; after the first batch, a column whose values were mostly
    distinct (ids, slugs, long prompts) is recompiled without its cache, whose lookups
    would then only cost.
    """

    def __init__(self, columns: Sequence[ColumnType], kinds: Sequence[str | None]) -> None:
        self.columns = list(columns)
        self.kinds = list(kinds)
        self.fields = [field_encoder(c.oid) for c in columns]
        self.caches: list[dict[Any, bytes]] = [{} for _ in columns]
        self.cached = [True] * len(columns)
        self._fast = self._compile(self.kinds)
        self._tuned = False

    def _tune(self, rows: int) -> None:
        self._tuned = True
        distinct = [len(cache) > rows // 2 for cache in self.caches]
        if rows >= 100 and any(distinct):
            self.cached = [not d for d in distinct]
            for i, d in enumerate(distinct):
                if d:
                    self.caches[i].clear()
            self._fast = self._compile(self.kinds)

    def _compile(self, kinds: Sequence[str | None]) -> Callable[[Sequence[Sequence[Any]]], bytes]:
        width = len(self.columns)
        names: dict[str, Any] = {
            "NULL": NULL, "TRUE": BOOL_FIELDS[True], "FALSE": BOOL_FIELDS[False], "HEAD": struct.pack("!h", width),
            "I2": I2.pack, "I4": I4.pack, "I8": I8.pack, "F4": F4.pack, "F8": F8.pack,
            "EPOCH": PG_EPOCH, "US": US, "bad": bool_field, "LEN": LEN.pack, "LIMIT": CACHE_LIMIT,
            "U16": b"\x00\x00\x00\x10", "fromhex": bytes.fromhex,
        }
        body: list[str] = []
        for i, kind in enumerate(kinds):
            field = self.fields[i]
            assert field is not None and kind is not None
            names[f"f{i}"] = field
            names[f"c{i}"] = self.caches[i]
            names[f"m{i}"] = _cached(field, self.caches[i])
            body.extend(_snippet(i, kind, self.cached[i]))
        unpack = ", ".join(f"v{i}" for i in range(width)) + ("," if width == 1 else "")
        source = "\n".join(
            [
                "def encode(rows):",
                "    out = []",
                "    a = out.append",
                f"    for {unpack} in rows:",
                "        a(HEAD)",
                *("        " + line for line in body),
                "    return b''.join(out)",
            ]
        )
        exec(compile(source, f"<copy encoder of {width} columns>", "exec"), names)  # our own template, no input
        encode: Callable[[Sequence[Sequence[Any]]], bytes] = names["encode"]
        return encode

    def encode(self, rows: Sequence[Sequence[Any]]) -> bytes:
        """The COPY tuples of ``rows``; a value no encoder takes raises ``asyncpg.DataError``."""
        try:
            encoded = self._fast(rows)
        except (TypeError, ValueError, OverflowError, AttributeError, struct.error):
            return self._slow(rows)  # values the fast path does not take: per value, with the column named
        if not self._tuned:
            self._tune(len(rows))
        return encoded

    def _slow(self, rows: Sequence[Sequence[Any]]) -> bytes:
        head = struct.pack("!h", len(self.columns))
        out: list[bytes] = []
        for row in rows:
            if len(row) != len(self.columns):
                raise asyncpg.DataError(f"a row has {len(row)} values for {len(self.columns)} columns")
            out.append(head)
            for column, field, value in zip(self.columns, self.fields, row, strict=True):
                if value is None:
                    out.append(NULL)
                    continue
                try:
                    out.append(field(value))  # type: ignore[misc]
                except (TypeError, ValueError, OverflowError, struct.error) as exc:
                    raise asyncpg.DataError(
                        f"invalid value for column {column.name} ({column.type_name}): {exc}"
                    ) from None
        return b"".join(out)


def row_encoder(columns: Sequence[ColumnType]) -> RowEncoder | None:
    """A ``RowEncoder`` for these column types, or None when one of them is not handled here."""
    kinds: list[str | None] = []
    for c in columns:
        if c.oid in SCALAR_KINDS:
            kinds.append(SCALAR_KINDS[c.oid])
        elif c.oid in ARRAY_ELEMENTS:
            kinds.append("array")
        else:
            return None
    return RowEncoder(columns, kinds)
