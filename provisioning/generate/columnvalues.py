"""Values for columns the toolkit does not generate: fills for unknown NOT NULL columns, pinned values.

``fill_value`` picks a type-appropriate constant for a column that is NOT NULL without a
default and unknown to the generator; ``coerce_value`` turns a value pinned in the TOML
schema map into what binary COPY wants for the column's type, or says in one sentence
why it does not fit.  Both read the column's SQLAlchemy type from reflection.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from ..errors import InputError

__all__ = ["coerce_value", "fill_value", "type_label"]


def type_label(t: sa.types.TypeEngine[Any]) -> str:
    try:
        return str(t.compile(dialect=pg.dialect()))
    except Exception:
        return type(t).__name__


def fill_value(t: sa.types.TypeEngine[Any], now: dt.datetime) -> Any:
    """A constant of column type ``t`` for an unknown NOT NULL column; ``LookupError`` if none fits."""
    if isinstance(t, sa.Enum):
        if t.enums:
            return t.enums[0]
        raise LookupError("an enum without labels")
    if isinstance(t, sa.ARRAY):
        return []
    if isinstance(t, sa.JSON):
        return "{}"
    if isinstance(t, sa.Boolean):
        return False
    if isinstance(t, sa.Integer):
        return 0
    if isinstance(t, sa.Float):
        return 0.0
    if isinstance(t, sa.Numeric):
        return decimal.Decimal(0)
    if isinstance(t, sa.DateTime):
        return now if t.timezone else now.replace(tzinfo=None)
    if isinstance(t, sa.Date):
        return now.date()
    if isinstance(t, sa.Time):
        return dt.time(0, 0)
    if isinstance(t, sa.Interval):
        return dt.timedelta(0)
    if isinstance(t, sa.Uuid):
        return uuid.UUID(int=0)
    if isinstance(t, sa.LargeBinary):
        return b""
    if isinstance(t, sa.String):  # after Enum (a String subclass)
        return ""
    raise LookupError(type_label(t))


def coerce_value(t: sa.types.TypeEngine[Any], value: Any, where: str) -> Any:
    """Turn a TOML value pinned in the schema map into what binary COPY wants for type ``t``."""
    try:
        if isinstance(t, sa.JSON):
            if isinstance(value, str):
                json.loads(value)
                return value
            return json.dumps(value, default=str)
        if isinstance(t, sa.ARRAY):
            if not isinstance(value, list):
                raise ValueError("expected an array")
            return value
        if isinstance(t, sa.Boolean):
            if not isinstance(value, bool):
                raise ValueError("expected true or false")
            return value
        if isinstance(t, sa.Integer):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("expected an integer")
            return value
        if isinstance(t, sa.Float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("expected a number")
            return float(value)
        if isinstance(t, sa.Numeric):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError("expected a number")
            return decimal.Decimal(str(value))
        if isinstance(t, sa.DateTime):
            v = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
            if t.timezone and v.tzinfo is None:
                v = v.replace(tzinfo=dt.UTC)
            return v
        if isinstance(t, sa.Date):
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if isinstance(t, sa.Uuid):
            return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        if isinstance(t, sa.String):
            if not isinstance(value, str):
                raise ValueError("expected a string")
            if isinstance(t, sa.Enum) and t.enums and value not in t.enums:
                raise ValueError(f"not one of {', '.join(t.enums)}")
            return value
    except (ValueError, TypeError, decimal.InvalidOperation) as exc:
        raise InputError(
            f"The schema map pins {where} to {value!r}, which does not fit its type {type_label(t)} ({exc})."
        ) from None
    return value
