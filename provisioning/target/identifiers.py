"""SQL identifiers as the toolkit sends them to asyncpg: always double-quoted, an embedded
``"`` doubled and nothing else changed (a ``%`` stays one ``%``: asyncpg's SQL has no
``%``-style parameters to escape it from, unlike SQLAlchemy's default preparer)."""

from __future__ import annotations

__all__ = ["qualified_name", "quote_identifier"]


def quote_identifier(name: str) -> str:
    """``name`` as one quoted identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def qualified_name(schema: str, name: str) -> str:
    """``"schema"."table"``, both parts quoted."""
    return f"{quote_identifier(schema)}.{quote_identifier(name)}"
