"""One value into one binary COPY field (4-byte length + payload), for the column types the toolkit writes.

Each field is what the type's binary input function reads and what its output function
writes (``COPY ... TO ... (FORMAT binary)`` gives the same bytes back; the tests check
that, type by type).  The functions accept what asyncpg accepts (an int-like for an
integer, a str or a UUID for a uuid, a naive datetime read as local time for a
timestamptz) and raise ``TypeError``/``ValueError``/``OverflowError`` for anything else.
A type is named by its *kind* (``SCALAR_KINDS``: several type OIDs share one, as
``text``, ``varchar`` and ``bpchar`` do); arrays by their element's OID.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

__all__ = [
    "ARRAY_ELEMENTS",
    "BOOL_FIELDS",
    "F4",
    "F8",
    "I2",
    "I4",
    "I8",
    "LEN",
    "NULL",
    "PG_EPOCH",
    "SCALAR_KINDS",
    "US",
    "bool_field",
    "field_encoder",
    "field_for_kind",
    "fields_of",
]

NULL = b"\xff\xff\xff\xff"

I2 = struct.Struct("!ih")
I4 = struct.Struct("!ii")
I8 = struct.Struct("!iq")
F4 = struct.Struct("!if")
F8 = struct.Struct("!id")
LEN = struct.Struct("!i")
_ARRAY_HEAD = struct.Struct("!iiiiii")  # field length, ndim, has-null flag, element oid, length, lower bound
_EMPTY_ARRAY = struct.Struct("!iiii")  # field length, ndim 0, flags 0, element oid
BOOL_FIELDS = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_PG_EPOCH_NAIVE = datetime(2000, 1, 1)
_PG_EPOCH_ORDINAL = date(2000, 1, 1).toordinal()
US = timedelta(microseconds=1)
_INFINITY_DATETIME = datetime.max  # asyncpg's mapping of PostgreSQL's ±infinity
_NEG_INFINITY_DATETIME = datetime.min
_INT64_MAX, _INT64_MIN = 0x7FFFFFFFFFFFFFFF, -0x8000000000000000
_INT32_MAX, _INT32_MIN = 0x7FFFFFFF, -0x80000000

# scalar type OIDs (fixed for built-in types) → kind of encoder
SCALAR_KINDS: dict[int, str] = {
    16: "bool", 17: "bytea", 20: "int8", 21: "int2", 23: "int4", 25: "text", 114: "json",
    700: "float4", 701: "float8", 1042: "text", 1043: "text", 1082: "date", 1114: "timestamp",
    1184: "timestamptz", 2950: "uuid", 3802: "jsonb",
}
# array type OID → element type OID, for the arrays of the scalars above
ARRAY_ELEMENTS: dict[int, int] = {
    1000: 16, 1001: 17, 1016: 20, 1005: 21, 1007: 23, 1009: 25, 199: 114, 1021: 700, 1022: 701,
    1014: 1042, 1015: 1043, 1182: 1082, 1115: 1114, 1185: 1184, 2951: 2950, 3807: 3802,
}


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
        return (value.astimezone(UTC) - PG_EPOCH) // US  # a naive value is local time, as in asyncpg
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
    return (value - _PG_EPOCH_NAIVE) // US  # an aware value fails here, as in asyncpg


def _days(value: Any) -> int:
    if not isinstance(value, date):
        raise TypeError(f"expected date, got {type(value).__name__}")
    if value == date.max:
        return _INT32_MAX
    if value == date.min:
        return _INT32_MIN
    return value.toordinal() - _PG_EPOCH_ORDINAL


def _with_length(payload: bytes) -> bytes:
    return LEN.pack(len(payload)) + payload


def bool_field(value: Any) -> bytes:
    if value is True or value is False:
        return BOOL_FIELDS[value]
    raise TypeError(f"expected bool, got {type(value).__name__}")


def _float(value: Any) -> float:
    if isinstance(value, str | bytes | bytearray):  # asyncpg takes numbers only
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _float4_field(value: Any) -> bytes:
    number = _float(value)
    try:
        return F4.pack(4, number)
    except OverflowError:
        raise OverflowError("value out of float32 range") from None


_FIELD: dict[str, Callable[[Any], bytes]] = {
    "bool": bool_field,
    "bytea": lambda v: _with_length(_bytea_payload(v)),
    "int2": lambda v: I2.pack(2, _int(v, -0x8000, 0x7FFF)),
    "int4": lambda v: I4.pack(4, _int(v, _INT32_MIN, _INT32_MAX)),
    "int8": lambda v: I8.pack(8, _int(v, _INT64_MIN, _INT64_MAX)),
    "float4": _float4_field,
    "float8": lambda v: F8.pack(8, _float(v)),
    "text": lambda v: _with_length(_text_payload(v)),
    "json": lambda v: _with_length(_text_payload(v)),
    "jsonb": lambda v: _with_length(b"\x01" + _text_payload(v)),
    "uuid": lambda v: b"\x00\x00\x00\x10" + _uuid_payload(v),
    "timestamptz": lambda v: I8.pack(8, _micros_tz(v)),
    "timestamp": lambda v: I8.pack(8, _micros_naive(v)),
    "date": lambda v: I4.pack(4, _days(v)),
}


def _array_field(element_oid: int) -> Callable[[Any], bytes]:
    element = _FIELD[SCALAR_KINDS[element_oid]]

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
    if oid in SCALAR_KINDS:
        return _FIELD[SCALAR_KINDS[oid]]
    if oid in ARRAY_ELEMENTS:
        return _array_field(ARRAY_ELEMENTS[oid])
    return None



def field_for_kind(kind: str) -> Callable[[Any], bytes] | None:
    """``value → field`` for a scalar kind (a value of ``SCALAR_KINDS``); None for any other name."""
    return _FIELD.get(kind)


def _canonical_uuid_fields(values: Sequence[Any]) -> list[bytes] | None:
    """uuid fields of canonical UUID strings (8-4-4-4-12 hex digits), decoded in one call; None otherwise."""
    if not all(type(v) is str for v in values):
        return None
    n, text = len(values), "".join(values)
    dashes = "-" * n
    if len(text) != 36 * n or any(text[k::36] != dashes for k in (8, 13, 18, 23)):
        return None
    try:
        raw = bytes.fromhex(text.replace("-", ""))
    except ValueError:
        return None
    if len(raw) != 16 * n:  # fromhex skips whitespace
        return None
    head = b"\x00\x00\x00\x10"
    return [head + raw[k : k + 16] for k in range(0, 16 * n, 16)]


def fields_of(kind: str, values: Sequence[Any]) -> list[bytes]:
    """The fields of many values of one scalar kind (None → NULL): what ``field_for_kind(kind)`` gives each,
    in bulk where the kind allows.  Raises as the per-value encoder does, and ``KeyError`` for an unknown kind."""
    if kind == "uuid" and values:
        fast = _canonical_uuid_fields(values)
        if fast is not None:
            return fast
    encode = _FIELD[kind]
    return [NULL if v is None else encode(v) for v in values]
