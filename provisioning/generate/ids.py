"""Primary keys of generated rows: client-side UUIDs, or integer blocks reserved from the tables' sequences.

The builders take keys through ``IdAccess`` (``id_access``): per-table functions and whole
blocks, which are much faster per row than ``IdSpace.id``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from ..schema.concepts import CONTRACT_TABLES
from .rowbase import IdAccess, IdFn

__all__ = ["IdSpace", "IntegerIds", "UuidIds", "id_access"]


@runtime_checkable
class IdSpace(Protocol):
    """Primary keys of generated rows: ``id(table, index)`` is the key of row ``index`` of ``table``.

    Implementations may also offer ``id_function(table) -> (index -> id)`` and
    ``id_block(table, start, stop) -> Sequence`` (ids of rows ``[start, stop)``); the
    streams use them when present because they are much faster per row.
    """

    def id(self, table: str, index: int) -> object: ...


_HEX3 = tuple(f"{k:03x}" for k in range(4096))


class UuidIds:
    """Client-side UUIDs, deterministic per (namespace, table, index), as canonical text.

    The first 64 bits hash (namespace, table) — version nibble 8, RFC 4122 variant — and
    the last 48 bits are the row index, so ids are unique by construction within a run,
    unique across runs with overwhelming probability, and ascending (B-tree friendly).
    asyncpg's binary COPY encodes ``str`` into ``uuid`` columns directly.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._prefixes: dict[str, str] = {}

    def _prefix(self, table: str) -> str:
        prefix = self._prefixes.get(table)
        if prefix is None:
            d = hashlib.sha256(f"agentic-loadkit/ids/{self.namespace}/{table}".encode()).hexdigest()
            prefix = self._prefixes[table] = f"{d[0:8]}-{d[8:12]}-8{d[13:16]}-8000-"
        return prefix

    def id(self, table: str, index: int) -> str:
        if not 0 <= index < 1 << 48:
            raise ValueError(f"row index {index} is outside 0..2**48")
        return f"{self._prefix(table)}{index:012x}"

    def id_function(self, table: str) -> Callable[[int], str]:
        """A fast ``index -> id`` for one table."""
        return functools.partial(self.id, table)

    def id_block(self, table: str, start: int, stop: int) -> list[str]:
        """Ids of rows ``[start, stop)``: string concatenation per 4,096-row block, no formatting per row."""
        if not 0 <= start <= stop <= 1 << 48:
            raise ValueError(f"rows [{start}, {stop}) are outside 0..2**48")
        prefix, out = self._prefix(table), []
        pos = start
        while pos < stop:
            block_end = min((pos | 0xFFF) + 1, stop)
            head = f"{prefix}{pos >> 12:09x}"
            out.extend([head + h for h in _HEX3[pos & 0xFFF:(pos & 0xFFF) + block_end - pos]])
            pos = block_end
        return out


class IntegerIds:
    """Integer keys from sequence blocks the orchestrator reserved: ``bases[table] + index``."""

    def __init__(self, bases: Mapping[str, int]) -> None:
        self.bases = dict(bases)

    def id(self, table: str, index: int) -> int:
        return self.bases[table] + index

    def id_function(self, table: str) -> Callable[[int], int]:
        return self.bases[table].__add__

    def id_block(self, table: str, start: int, stop: int) -> range:
        base = self.bases[table]
        return range(base + start, base + stop)



def id_access(ids: IdSpace, offsets: Mapping[str, Sequence[int]]) -> IdAccess:
    """Fast id access for the builders: ``ids``'s per-table functions and blocks when it has them."""
    fast = getattr(ids, "id_function", None)
    fns: dict[str, IdFn] = {
        table: fast(table) if callable(fast) else functools.partial(ids.id, table) for table in CONTRACT_TABLES
    }
    block = getattr(ids, "id_block", None)
    if not callable(block):
        def block(table: str, start: int, stop: int) -> list[object]:
            return [fns[table](i) for i in range(start, stop)]
    return IdAccess(fns, block, offsets)
