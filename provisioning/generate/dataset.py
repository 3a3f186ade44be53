"""The generated dataset as the orchestrator sees it: one stream of COPY-ready rows per table.

``Dataset(spec, password_hashes)`` lays the run out (tenant sizes, pools) without
generating a row; ``dataset.streams`` (parents first) yield batches of tuples for
asyncpg's binary COPY, with primary keys taken from an ``IdSpace`` (client-side UUIDs,
or integer blocks reserved from the tables' sequences), or the same batches already
encoded as binary COPY tuples (``RowBatches.encoded``, ``rowbytes``).  Streaming a table updates the
fingerprint; ``dataset.fingerprint()`` is valid once every stream has been consumed.
Memory stays bounded: the only state proportional to a count is per-tenant arrays.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from typing import TypeVar

from ..errors import InputError
from ..schema.concepts import CONTRACT_TABLES
from .fingerprint import CHUNK_ROWS, FingerprintAccumulator, chunk_digest
from .ids import IdSpace, IntegerIds, UuidIds, id_access
from .passwords import DEFAULT_PASSWORD_COUNT
from .pools import build_pools
from .rowbase import (
    EXTRA_FIELDS,
    FIELDS,
    OPTIONAL_COLUMNS,
    TABLE_COLUMNS,
    TENANT_SLOT_RANGE,
    USER_CANON_WIDTH,
    IdAccess,
    RowContext,
    agent_deleted,
    mix64,
    row_hash,
    second_hash,
    table_key,
)
from .rowbytes import encoded_builder
from .rows import build_rows
from .scales import ScaleCounts, allocate, parse_skew, tenant_weights
from .v1values import v1_catalogue

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "EXTRA_FIELDS",
    "FIELDS",
    "OPTIONAL_COLUMNS",
    "TABLE_COLUMNS",
    "Dataset",
    "GenerationSpec",
    "IdSpace",
    "IntegerIds",
    "RowBatches",
    "TableStream",
    "UserInfo",
    "UuidIds",
    "compute_fingerprint",
]

# Rows per batch handed to COPY, the one default of every loader: a batch of Python tuples per
# stream bounds memory, and small batches keep one stream's generation from starving the others.
DEFAULT_BATCH_SIZE = 4_000
_NAMESPACE_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
_MAX_PASSWORD_SLOTS = 1 << 16
_M = (1 << 64) - 1

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
        if self.skew is not None:
            parse_skew(self.skew)  # the one rule for a skew; library callers may skip prepare_run
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


@dataclass(frozen=True, slots=True)
class UserInfo:
    """What the credentials pool needs to know about one generated user."""

    index: int
    email: str
    password_slot: int
    tenant_index: int
    role: str
    is_active: bool


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
    ) -> RowBatches:
        """Lists of up to ``batch_size`` rows ``[start, stop)``, ready for binary COPY.

        Values are ids as ``ids`` gives them, ``str``, ``int``, ``float``, ``bool``, aware
        ``datetime`` and ``None``; JSON columns are JSON text.  The rows' fingerprint
        chunks are recorded when the iterator is exhausted; ``start``/``stop`` must be
        multiples of ``CHUNK_ROWS`` (or ``stop == count``) — use ``ranges()``.  The same
        batches can be had already encoded instead (``RowBatches.encoded``).
        """
        stop = self.count if stop is None else stop
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 0 <= start <= stop <= self.count:
            raise ValueError(f"range [{start}, {stop}) is outside table {self.table} of {self.count} rows")
        if start % CHUNK_ROWS or (stop % CHUNK_ROWS and stop != self.count):
            raise ValueError(f"range bounds must be multiples of {CHUNK_ROWS} (or the row count)")
        return RowBatches(self, id_access(ids, self._dataset.context.offsets), batch_size, start, stop)

    def generate(self, build: Callable[[int, int, list[int]], _Part], batch_size: int, start: int, stop: int
                 ) -> Iterator[list[_Part]]:
        """The parts ``build`` makes of rows ``[start, stop)``, a list of parts per batch of ``batch_size``
        rows (a part never spans a fingerprint chunk); records the fingerprint chunks when exhausted."""
        ds, table = self._dataset, self.table
        ds.fingerprint_state.reset(table, start // CHUNK_ROWS, -(-stop // CHUNK_ROWS))
        done: dict[int, bytes] = {}
        canon: list[int] = []
        parts: list[_Part] = []
        pos, rows = start, 0
        while pos < stop:
            chunk_end = min((pos // CHUNK_ROWS + 1) * CHUNK_ROWS, stop)
            end = min(chunk_end, pos + batch_size - rows)
            parts.append(build(pos, end, canon))
            rows += end - pos
            pos = end
            if pos == chunk_end:
                done[(pos - 1) // CHUNK_ROWS] = chunk_digest(canon)
                canon = []
            if rows >= batch_size or pos == stop:
                yield parts
                parts, rows = [], 0
        ds.fingerprint_state.record(table, done)


_Part = TypeVar("_Part")


class RowBatches:
    """One table's rows ``[start, stop)`` in batches: iterate for lists of tuples, or take ``encoded``.

    Either way the batches are generated once, lazily, and the fingerprint chunks are
    recorded when they are exhausted.
    """

    def __init__(self, stream: TableStream, acc: IdAccess, batch_size: int, start: int, stop: int) -> None:
        self.stream, self._acc, self._size, self._range = stream, acc, batch_size, (start, stop)
        self._tuples: Iterator[list[tuple]] | None = None

    def __iter__(self) -> Iterator[list[tuple]]:
        return self

    def __next__(self) -> list[tuple]:
        if self._tuples is None:
            ctx, table, acc = self.stream._dataset.context, self.stream.table, self._acc

            def build(lo: int, hi: int, canon: list[int]) -> list[tuple]:
                return build_rows(ctx, table, lo, hi, acc, canon)

            self._tuples = (parts[0] if len(parts) == 1 else [r for part in parts for r in part]
                            for parts in self.stream.generate(build, self._size, *self._range))
        return next(self._tuples)

    def encoded(self, kinds: Sequence[str]) -> Iterator[tuple[bytes, int]] | None:
        """The same batches as binary COPY tuples (no header) with their row counts, for columns of these
        kinds (``copyfields.SCALAR_KINDS``, one per column of the stream); None when they cannot be had
        so (``rowbytes.encoded_builder``) or when the tuples were started — then iterate instead."""
        ctx, table, acc = self.stream._dataset.context, self.stream.table, self._acc
        if self._tuples is not None or self.stream.columns != TABLE_COLUMNS[table]:
            return None
        make = encoded_builder(ctx, table, kinds, acc)
        if make is None:
            return None
        self._tuples = iter(())  # the rows are this iterator's now

        def build(lo: int, hi: int, canon: list[int]) -> tuple[bytes, int]:
            return make(lo, hi, acc, canon), hi - lo

        return ((b"".join(p for p, _ in parts), sum(n for _, n in parts))
                for parts in self.stream.generate(build, self._size, *self._range))


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
        return build_rows(self.context, table, start, stop, id_access(ids, self._offsets), [])

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
        acc = id_access(IntegerIds({table: 0 for table in CONTRACT_TABLES}), self._offsets)
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
