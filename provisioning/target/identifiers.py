"""SQL identifiers as the toolkit sends them to asyncpg: always double-quoted, an embedded
``"`` doubled and nothing else changed (a ``%`` stays one ``%``: asyncpg's SQL has no
``%``-style parameters to escape it from, unlike SQLAlchemy's default preparer)."""

from __future__ import annotations

__all__ = ["KEY_ARRAY_TYPES", "key_in", "qualified_name", "quote_identifier"]


def quote_identifier(name: str) -> str:
    """``name`` as one quoted identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, name: str) -> str:
    """``"schema"."table"``, both parts quoted."""
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"


# The array type of a run's key kind: a fixed whitelist, never text read from the database.
KEY_ARRAY_TYPES = {"uuid": "uuid[]", "integer": "bigint[]"}


def key_in(column: str, id_kind: object, param: str) -> str:
    """``column = ANY(param)`` for a ``text[]`` parameter of ids: compared in the column's own type
    when the key kind is known (so an index serves it), else as text."""
    array = KEY_ARRAY_TYPES.get(str(id_kind))
    col = quote_identifier(column)
    return f"{col} = ANY({param}::text[]::{array})" if array else f"{col}::text = ANY({param}::text[])"
