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

Each field is what the type's binary input function reads and what its output function
writes (``COPY ... TO ... (FORMAT binary)`` gives the same bytes back; the tests check
that, type by type).  A value of a Python type the fast path does not take goes through
a per-value path that accepts what asyncpg accepts (an int-like for an integer, a str or
a UUID for a uuid, a naive datetime read as local time for a timestamptz); what neither
takes raises ``asyncpg.DataError`` naming the column.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

__all__ = [
    "COPY_HEADER",
    "COPY_TRAILER",
    "ColumnType",
    "RowEncoder",
    "column_types",
    "row_encoder",
]

COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # signature, flags, no extension
COPY_TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"
CACHE_LIMIT = 8192  # encoded fields remembered per column (repeated values only pay once)

_I2 = struct.Struct("!ih")
_I4 = struct.Struct("!ii")
_I8 = struct.Struct("!iq")
_F4 = struct.Struct("!if")
_F8 = struct.Struct("!id")
_LEN = struct.Struct("!i")
_ARRAY_HEAD = struct.Struct("!iiiiii")  # field length, ndim, has-null flag, element oid, length, lower bound
_EMPTY_ARRAY = struct.Struct("!iiii")  # field length, ndim 0, flags 0, element oid
_BOOL = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_NAIVE = datetime(2000, 1, 1)
_PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()
_US = timedelta(microseconds=1)
_INFINITY_DATETIME = datetime.max  # asyncpg's mapping of PostgreSQL's ±infinity
_NEG_INFINITY_DATETIME = datetime.min
_INT64_MAX, _INT64_MIN = 0x7FFFFFFFFFFFFFFF, -0x8000000000000000
_INT32_MAX, _INT32_MIN = 0x7FFFFFFF, -0x80000000

# scalar type OIDs (fixed for built-in types) → kind of encoder
_SCALARS: dict[int, str] = {
    16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text", 114: "json",
    700: "float4", 701: "float8", 1042: "text", 1043: "text", 1082: "date", 1114: "timestamp",
    1184: "timestamptz", 2950: "uuid", 3802: "jsonb",
}
# array type OID → element type OID, for the arrays of the scalars above
_ARRAYS: dict[int, int] = {
    1000: 16, 1001: 17, 1016: 20, 1005: 21, 1007: 23, 1009: 25, 199: 114, 1021: 700, 1022: 701,
    1014: 1042, 1015: 1043, 1182: 1082, 1115: 1114, 1185: 1184, 2951: 2950, 3807: 3802,
}


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

    def quote(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    stmt = await conn.prepare(
        f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(schema)}.{quote(table)} LIMIT 0"
    )
    return [ColumnType(c, a.type.oid, a.type.name) for c, a in zip(columns, stmt.get_attributes(), strict=True)]


# --------------------------------------------------------------------------- one value → one field


def _text_payload(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return value.encode()


def _bytea_payload(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _int(value: Any, low: int, high: int) -> int:
    if type(value) is not int and hasattr(type(value), "__int__"):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"expected int, got {type(value).__name__}")
    if not low <= value <= high:
        raise OverflowError(f"value {value} out of range {low}..{high}")
    return value


def _uuid_payload(value: Any) -> bytes:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        digits = value.replace("-", "")
        raw = bytes.fromhex(digits) if len(digits) == 32 else b""
        if len(raw) != 16:
            raise ValueError(f"invalid UUID {value!r}")
        return raw
    raise TypeError(f"expected str or UUID, got {type(value).__name__}")


def _micros_tz(value: Any) -> int:
    if isinstance(value, datetime):
        if value == _INFINITY_DATETIME:
            return _INT64_MAX
        if value == _NEG_INFINITY_DATETIME:
            return _INT64_MIN
        return (value.astimezone(UTC) - _PG_EPOCH) // _US  # a naive value is local time, as in asyncpg
    if isinstance(value, date):
        return _micros_tz(datetime(value.year, value.month, value.day).astimezone())
    raise TypeError(f"expected datetime, got {type(value).__name__}")


def _micros_naive(value: Any) -> int:
    if not isinstance(value, datetime):
        raise TypeError(f"expected datetime, got {type(value).__name__}")
    if value == _INFINITY_DATETIME:
        return _INT64_MAX
    if value == _NEG_INFINITY_DATETIME:
        return _INT64_MIN
    return (value - _PG_EPOCH_NAIVE) // _US  # an aware value fails here, as in asyncpg


def _days(value: Any) -> int:
    if not isinstance(value, date):
        raise TypeError(f"expected date, got {type(value).__name__}")
    if value == date.max:
        return _INT32_MAX
    if value == date.min:
        return _INT32_MIN
    return value.toordinal() - _PG_EPOCH_ORDINAL


def _with_length(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


def _bool_field(value: Any) -> bytes:
    if value is True or value is False:
        return _BOOL[value]
    raise TypeError(f"expected bool, got {type(value).__name__}")


def _float(value: Any) -> float:
    if isinstance(value, str | bytes | bytearray):  # asyncpg takes numbers only
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _float4_field(value: Any) -> bytes:
    number = _float(value)
    try:
        return _F4.pack(4, number)
    except OverflowError:
        raise OverflowError("value out of float32 range") from None


_FIELD: dict[str, Callable[[Any], bytes]] = {
    "bool": _bool_field,
    "bytea": lambda v: _with_length(_bytea_payload(v)),
    "int2": lambda v: _I2.pack(2, _int(v, -0x8000, 0x7FFF)),
    "int4": lambda v: _I4.pack(4, _int(v, _INT32_MIN, _INT32_MAX)),
    "int8": lambda v: _I8.pack(8, _int(v, _INT64_MIN, _INT64_MAX)),
    "float4": _float4_field,
    "float8": lambda v: _F8.pack(8, _float(v)),
    "text": lambda v: _with_length(_text_payload(v)),
    "json": lambda v: _with_length(_text_payload(v)),
    "jsonb": lambda v: _with_length(b"\x01" + _text_payload(v)),
    "uuid": lambda v: b"\x00\x00\x00\x10" + _uuid_payload(v),
    "timestamptz": lambda v: _I8.pack(8, _micros_tz(v)),
    "timestamp": lambda v: _I8.pack(8, _micros_naive(v)),
    "date": lambda v: _I4.pack(4, _days(v)),
}


def _array_field(element_oid: int) -> Callable[[Any], bytes]:
    element = _FIELD[_SCALARS[element_oid]]

    def field(value: Any) -> bytes:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        if not value:
            return _EMPTY_ARRAY.pack(12, 0, 0, element_oid)
        parts = []
        has_null = 0
        for item in value:
            if item is None:
                parts.append(NULL)
                has_null = 1
            elif isinstance(item, list | tuple):
                raise TypeError("multi-dimensional arrays are not supported")
            else:
                parts.append(element(item))
        body = b"".join(parts)
        return _ARRAY_HEAD.pack(20 + len(body), 1, has_null, element_oid, len(value), 1) + body

    return field


def field_encoder(oid: int) -> Callable[[Any], bytes] | None:
    """``value → field`` (length + payload) for the type ``oid``; None for a type not handled here."""
    if oid in _SCALARS:
        return _FIELD[_SCALARS[oid]]
    if oid in _ARRAYS:
        return _array_field(_ARRAYS[oid])
    return None


# --------------------------------------------------------------------------- rows → bytes, fast


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
            "NULL": NULL, "TRUE": _BOOL[True], "FALSE": _BOOL[False], "HEAD": struct.pack("!h", width),
            "I2": _I2.pack, "I4": _I4.pack, "I8": _I8.pack, "F4": _F4.pack, "F8": _F8.pack,
            "EPOCH": _PG_EPOCH, "US": _US, "bad": _bool_field, "LEN": _LEN.pack, "LIMIT": CACHE_LIMIT,
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
        if c.oid in _SCALARS:
            kinds.append(_SCALARS[c.oid])
        elif c.oid in _ARRAYS:
            kinds.append("array")
        else:
            return None
    return RowEncoder(columns, kinds)
