"""The generated dataset as the orchestrator sees it: one stream of COPY-ready rows per table.

``Dataset(spec, password_hashes)`` lays the run out (tenant sizes, pools) without
generating a row; ``dataset.streams`` (parents first) yield batches of tuples for
asyncpg's binary COPY, with primary keys taken from an ``IdSpace`` (client-side UUIDs,
or integer blocks reserved from the tables' sequences).  Streaming a table updates the
fingerprint; ``dataset.fingerprint()`` is valid once every stream has been consumed.
Memory stays bounded: the only state proportional to a count is per-tenant arrays.
"""

from __future__ import annotations

import functools
import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import Protocol, runtime_checkable

from ..errors import InputError
from ..schema.concepts import CONTRACT_TABLES
from .fingerprint import CHUNK_ROWS, FingerprintAccumulator, chunk_digest
from .passwords import DEFAULT_PASSWORD_COUNT
from .pools import build_pools
from .rows import (
    EXTRA_FIELDS,
    FIELDS,
    OPTIONAL_COLUMNS,
    TABLE_COLUMNS,
    TENANT_SLOT_RANGE,
    USER_CANON_WIDTH,
    IdAccess,
    IdFn,
    RowContext,
    agent_deleted,
    build_rows,
    mix64,
    row_hash,
    second_hash,
    table_key,
)
from .scales import MAX_SKEW, ScaleCounts, allocate, tenant_weights
from .v1values import v1_catalogue

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ESTIMATED_ROW_BYTES",
    "EXTRA_FIELDS",
    "FIELDS",
    "OPTIONAL_COLUMNS",
    "TABLE_COLUMNS",
    "Dataset",
    "GenerationSpec",
    "IdSpace",
    "IntegerIds",
    "TableStream",
    "UserInfo",
    "UuidIds",
    "compute_fingerprint",
    "estimated_bytes",
]

# Rows per batch handed to COPY, the one default of every loader: a batch of Python tuples per
# stream bounds memory, and small batches keep one stream's generation from starving the others.
DEFAULT_BATCH_SIZE = 4_000
_NAMESPACE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_MAX_PASSWORD_SLOTS = 1 << 16
_M = (1 << 64) - 1

#: Heap + TOAST bytes per row, measured after COPY into the reference schema (UUID keys,
#: medium scale); indexes excluded.  For the plan that ``--dry-run`` prints.
ESTIMATED_ROW_BYTES: Mapping[str, int] = {
    "tenants": 400, "users": 345, "agents": 1_260, "workflows": 1_090, "collections": 245, "mcp_servers": 420,
}


def estimated_bytes(counts: ScaleCounts) -> dict[str, int]:
    """Rough table size (heap + TOAST, indexes excluded) per table, for the plan ``--dry-run`` prints."""
    return {table: n * ESTIMATED_ROW_BYTES[table] for table, n in counts.as_dict().items()}


@dataclass(frozen=True)
class GenerationSpec:
    """Everything that decides the generated data (together with the toolkit's version).

    ``namespace`` (the run id, lower-case letters, digits and hyphens, ≤ 32 chars) makes
    unique columns unique per run; it does not change the fingerprint.
    """

    seed: int
    namespace: str
    counts: ScaleCounts
    skew: float | None = 1.0
    password_slots: int = DEFAULT_PASSWORD_COUNT
    inactive_user_share: float = 0.05
    deleted_agent_share: float = 0.03

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"Seed {self.seed!r} must be a whole number.")
        if not isinstance(self.namespace, str) or not _NAMESPACE_RE.match(self.namespace):
            raise InputError(
                f"Namespace {self.namespace!r} must be 1-32 lower-case letters, digits or inner hyphens."
            )
        if self.skew is not None and not 0.0 <= self.skew <= MAX_SKEW:
            raise InputError(f"Skew {self.skew!r} must be between 0 and {MAX_SKEW:g}, or 'uniform'.")
        if not 1 <= self.password_slots <= _MAX_PASSWORD_SLOTS:
            raise InputError(
                f"Password slots {self.password_slots} must be between 1 and {_MAX_PASSWORD_SLOTS}."
            )
        for name in ("inactive_user_share", "deleted_agent_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise InputError(f"Share {name}={share!r} must be between 0 and 1.")
        if self.counts.tenants < 1 or self.counts.users < self.counts.tenants:
            raise InputError(
                f"Counts tenants={self.counts.tenants}, users={self.counts.users} need at least one tenant "
                "and one user per tenant."
            )


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


@dataclass(frozen=True, slots=True)
class UserInfo:
    """What the credentials pool needs to know about one generated user."""

    index: int
    email: str
    password_slot: int
    tenant_index: int
    role: str
    is_active: bool


def _id_access(ids: IdSpace, offsets: Mapping[str, Sequence[int]]) -> IdAccess:
    fast = getattr(ids, "id_function", None)
    fns: dict[str, IdFn] = {
        table: fast(table) if callable(fast) else functools.partial(ids.id, table) for table in CONTRACT_TABLES
    }
    block = getattr(ids, "id_block", None)
    if not callable(block):
        def block(table: str, start: int, stop: int) -> list[object]:
            return [fns[table](i) for i in range(start, stop)]
    return IdAccess(fns, block, offsets)


@dataclass
class TableStream:
    """The rows of one table, generated lazily in index order."""

    table: str
    columns: tuple[str, ...]
    count: int
    _dataset: Dataset = field(repr=False, compare=False)

    def ranges(self, parts: int) -> list[tuple[int, int]]:
        """Split the table into ≤ ``parts`` chunk-aligned ``(start, stop)`` ranges (for parallel COPY)."""
        chunks = -(-self.count // CHUNK_ROWS)
        parts = max(1, min(parts, chunks))
        bounds = [min(self.count, (chunks * k // parts) * CHUNK_ROWS) for k in range(parts + 1)]
        return [(a, b) for a, b in pairwise(bounds) if b > a]

    def batches(
        self, ids: IdSpace, batch_size: int = DEFAULT_BATCH_SIZE, *, start: int = 0, stop: int | None = None
    ) -> Iterator[list[tuple]]:
        """Lists of up to ``batch_size`` rows ``[start, stop)``, ready for binary COPY.

        Values are ids as ``ids`` gives them, ``str``, ``int``, ``float``, ``bool``, aware
        ``datetime`` and ``None``; JSON columns are JSON text.  The rows' fingerprint
        chunks are recorded when the iterator is exhausted; ``start``/``stop`` must be
        multiples of ``CHUNK_ROWS`` (or ``stop == count``) — use ``ranges()``.
        """
        stop = self.count if stop is None else stop
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= start <= stop <= self.count:
            raise ValueError(f"range [{start}, {stop}) is outside table {self.table} of {self.count} rows")
        if start % CHUNK_ROWS or (stop % CHUNK_ROWS and stop != self.count):
            raise ValueError(f"range bounds must be multiples of {CHUNK_ROWS} (or the row count)")
        return self._generate(_id_access(ids, self._dataset.context.offsets), batch_size, start, stop)

    def _generate(self, acc: IdAccess, batch_size: int, start: int, stop: int) -> Iterator[list[tuple]]:
        ds, table = self._dataset, self.table
        ds.fingerprint_state.reset(table, start // CHUNK_ROWS, -(-stop // CHUNK_ROWS))
        done: dict[int, bytes] = {}
        canon: list[int] = []
        batch: list[tuple] = []
        pos = start
        while pos < stop:
            chunk_end = min((pos // CHUNK_ROWS + 1) * CHUNK_ROWS, stop)
            end = min(chunk_end, pos + batch_size - len(batch))
            rows = build_rows(ds.context, table, pos, end, acc, canon)
            if batch:
                batch.extend(rows)
            else:
                batch = rows
            pos = end
            if pos == chunk_end:
                done[(pos - 1) // CHUNK_ROWS] = chunk_digest(canon)
                canon = []
            if len(batch) >= batch_size or pos == stop:
                yield batch
                batch = []
        ds.fingerprint_state.record(table, done)


class Dataset:
    """One run's data, laid out by tenant; rows are generated only when streamed.

    ``extended`` names the tables whose rows also carry ``EXTRA_FIELDS`` (the binding of the
    live schema decides); ``role_field`` is the users field whose role the credentials show, renamed by
    ``role_names`` (the schema map's value vocabulary).
    """

    def __init__(self, spec: GenerationSpec, password_hashes: Sequence[str], *,
                 extended: frozenset[str] = frozenset(), role_field: str = "role",
                 role_names: Mapping[str, str] | None = None) -> None:
        if len(password_hashes) != spec.password_slots:
            raise ValueError(f"expected {spec.password_slots} password hashes, got {len(password_hashes)}")
        self.spec = spec
        seed = spec.seed & _M
        counts = spec.counts.as_dict()
        n = spec.counts.tenants
        weights = tenant_weights(n, spec.skew, seed)
        self._sizes: dict[str, list[int]] = {"tenants": [1] * n}
        for table in CONTRACT_TABLES[1:]:
            self._sizes[table] = allocate(counts[table], weights, minimum=1)
        self._offsets: dict[str, list[int]] = {
            table: [0, *accumulate(sizes)] for table, sizes in self._sizes.items()
        }
        created_key = table_key(seed, "tenant_created")
        self.pools = build_pools(seed)
        self.context = RowContext(
            seed=seed,
            namespace=spec.namespace,
            pools=self.pools,
            offsets=self._offsets,
            tenant_slots=[mix64(created_key + t) % TENANT_SLOT_RANGE for t in range(n)],
            password_hashes=tuple(password_hashes),
            inactive_threshold=round(spec.inactive_user_share * (1 << 20)),
            deleted_threshold=round(spec.deleted_agent_share * (1 << 20)),
            extended=frozenset(extended),
            v1=v1_catalogue(seed, self.pools) if extended else None,
        )
        self._role_names = dict(role_names or {})
        self._role_at = (FIELDS if "users" in extended else TABLE_COLUMNS)["users"].index(role_field)
        header = {
            "counts": counts, "skew": spec.skew, "password_slots": spec.password_slots,
            "inactive_user_share": spec.inactive_user_share, "deleted_agent_share": spec.deleted_agent_share,
            "columns": {t: list(c) for t, c in TABLE_COLUMNS.items()},
        }
        if extended:  # the guide's header (and fingerprint) stays as it always was
            header["extended"] = {t: list(EXTRA_FIELDS[t]) for t in CONTRACT_TABLES if t in extended}
        self.fingerprint_state = FingerprintAccumulator(header, self.pools.digest, counts)
        self.streams: list[TableStream] = [
            TableStream(table, (FIELDS if table in extended else TABLE_COLUMNS)[table], counts[table], self)
            for table in CONTRACT_TABLES
        ]

    def stream(self, table: str) -> TableStream:
        for s in self.streams:
            if s.table == table:
                return s
        raise KeyError(f"no table {table!r}; tables: {', '.join(CONTRACT_TABLES)}")

    def build_range(self, table: str, start: int, stop: int, ids: IdSpace) -> list[tuple]:
        """Rows ``[start, stop)`` of ``table``, rebuilt alone (any range; the fingerprint is untouched)."""
        count = self._offsets[table][-1]
        if not 0 <= start <= stop <= count:
            raise ValueError(f"range [{start}, {stop}) is outside table {table} of {count} rows")
        return build_rows(self.context, table, start, stop, _id_access(ids, self._offsets), [])

    def tenant_sizes(self) -> dict[str, list[int]]:
        """Rows per tenant index, per table."""
        return {table: list(sizes) for table, sizes in self._sizes.items()}

    def tenant_range(self, table: str, tenant_index: int) -> range:
        """The row indices of ``table`` that belong to tenant ``tenant_index`` (a contiguous block)."""
        offsets = self._offsets[table]
        return range(offsets[tenant_index], offsets[tenant_index + 1])

    def tenant_of(self, table: str, index: int) -> int:
        offsets = self._offsets[table]
        if not 0 <= index < offsets[-1]:
            raise IndexError(f"row {index} is outside table {table} of {offsets[-1]} rows")
        return bisect_right(offsets, index) - 1

    def users(self) -> Iterator[UserInfo]:
        """Every generated user, in index order (the same values the ``users`` stream writes)."""
        acc = _id_access(IntegerIds({table: 0 for table in CONTRACT_TABLES}), self._offsets)
        total, width = self._offsets["users"][-1], USER_CANON_WIDTH
        for lo in range(0, total, CHUNK_ROWS):
            canon: list[int] = []
            rows = build_rows(self.context, "users", lo, min(lo + CHUNK_ROWS, total), acc, canon)
            for k, row in enumerate(rows):
                role = row[self._role_at]
                yield UserInfo(lo + k, row[2], canon[k * width + 3], canon[k * width],
                               self._role_names.get(role, role), row[7])

    def tenant_slug(self, tenant_index: int) -> str:
        return self.context.tenant_slug(tenant_index)

    def tenant_name(self, tenant_index: int) -> str:
        return self.context.tenant_name(tenant_index)

    def agent_is_deleted(self, index: int) -> bool:
        """Whether agent ``index`` is soft-deleted (``deleted_at`` set, status ``deleted``)."""
        key = table_key(self.context.seed, "agents")
        return agent_deleted(second_hash(row_hash(key, index)), self.context.deleted_threshold)

    def fingerprint(self) -> str:
        """sha256 hex over every table's canonical rows; ``RuntimeError`` until all streams were consumed."""
        return self.fingerprint_state.hexdigest()


def compute_fingerprint(spec: GenerationSpec) -> str:
    """Generate everything without a database and return the fingerprint (tests, dry runs)."""
    dataset = Dataset(spec, [f"slot-{k}" for k in range(spec.password_slots)])
    ids = IntegerIds({table: 1 for table in CONTRACT_TABLES})
    for stream in dataset.streams:
        for _batch in stream.batches(ids):
            pass
    return dataset.fingerprint()
