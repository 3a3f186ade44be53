"""Copy a run's generated rows: tenants first, then the children, on one or several COPY streams.

Why several streams: in a bulk load the PostgreSQL backend is the bottleneck (index
maintenance, foreign-key checks, WAL), and one backend uses one core.  With
``streams >= 2`` the child tables are cut into pieces (whole tables, and the big ones
split into row ranges that ``TableStream.ranges`` aligns with the fingerprint chunks)
and loaded on ``streams`` connections at once, each piece in its own transaction, a
piece starting only once every table it references by foreign key is committed.  That
is not one transaction, so a run is *cleanly undoable* rather than atomic: the caller
commits the tenants (with their ledger rows) before any child row, holds them
(``runs.tenants``) while loading, and deletes the run's rows by tenant id on failure
(``delete_run_rows``).  With one stream everything is copied on the caller's
connection, in the caller's transaction: atomic, and slower on a multi-core server.

``RunLoader`` only copies.  It opens and closes its own stream connections, reports
what it copied (``LoadResult``), and tells its caller when a table is committed
(``TableCommitted``); the ledger, ANALYZE, the foreign-key checks and the undo are the
caller's (``provision``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ..generate.dataset import Dataset, IdSpace
from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..runs.tenants import HeldTenants, hold_tenants
from ..schema.reflect import TablePlan
from ..target.copyload import RowTransform, copy_rows
from ..target.identifiers import quote_identifier
from ..target.session import close_connection, drop_connection
from .fkcheck import REPLICA_ROLE

__all__ = [
    "MIN_SPLIT_ROWS",
    "LoadOptions",
    "LoadResult",
    "Piece",
    "PieceHook",
    "RunLoader",
    "TableCommitted",
    "TableLoad",
    "delete_run_rows",
    "load_order",
    "plan_pieces",
    "relation_sizes",
]

MIN_SPLIT_ROWS = 30_000  # tables smaller than this are loaded as one piece
PieceHook = Callable[["Piece"], RowTransform | None]
# awaited once a table's rows are all committed, on the idle stream connection that committed them
TableCommitted = Callable[[str, asyncpg.Connection], Awaitable[None]]


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of one table, loaded in one transaction."""

    table: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class TableLoad:
    """What loading one table took: rows, bytes added (heap, and heap + TOAST + indexes), time."""

    table: str
    name: str
    rows: int
    heap_bytes: int
    total_bytes: int
    seconds: float


@dataclass(frozen=True)
class LoadOptions:
    """How to copy: streams, rows per batch, the split threshold, and whether FK triggers are off."""

    streams: int
    batch_size: int
    split_rows: int = MIN_SPLIT_ROWS
    fk_triggers_off: bool = False  # the keys are checked set-based after the load

    @property
    def parallel(self) -> bool:
        return self.streams > 1


@dataclass(frozen=True)
class LoadResult:
    """What a load copied: per table (parents first), and the tenants held with their real status."""

    tables: tuple[TableLoad, ...]
    held: HeldTenants = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def load_order(plans: Mapping[str, TablePlan]) -> list[str]:
    """Contract tables parents first (foreign-key order; tenants always first)."""
    order: list[str] = []
    pending = dict(plans)
    while pending:
        ready = [t for t, p in pending.items() if all(q in order or q not in plans for q in p.parents)]
        if not ready:  # a cycle among the platform tables: fall back to the generator's order
            ready = list(pending)
        ready.sort(key=lambda t: (t != "tenants", list(plans).index(t)))
        order.append(ready[0])
        del pending[ready[0]]
    return order


def plan_pieces(
    dataset: Dataset, tables: Sequence[str], streams: int, split_rows: int = MIN_SPLIT_ROWS
) -> list[Piece]:
    pieces: list[Piece] = []
    for table in tables:
        stream = dataset.stream(table)
        if stream.count == 0:
            continue
        parts = streams if streams > 1 and stream.count >= split_rows else 1
        pieces.extend(Piece(table, a, b) for a, b in stream.ranges(parts))
    return pieces


class _Scheduler:
    """Hands out pieces whose parent tables are fully committed, biggest first."""

    def __init__(self, pieces: Sequence[Piece], parents: Mapping[str, set[str]]) -> None:
        self.pending = sorted(pieces, key=lambda p: -p.rows)
        self.remaining = Counter(p.table for p in pieces)
        self.parents = parents
        self.cond = asyncio.Condition()

    def _ready(self, piece: Piece) -> bool:
        return all(self.remaining[q] == 0 for q in self.parents.get(piece.table, ()))

    async def take(self) -> Piece | None:
        async with self.cond:
            while True:
                if not self.pending:
                    return None
                for i, piece in enumerate(self.pending):
                    if self._ready(piece):
                        return self.pending.pop(i)
                await self.cond.wait()

    async def finish(self, piece: Piece) -> bool:
        """Mark ``piece`` done; True when it was its table's last piece."""
        async with self.cond:
            self.remaining[piece.table] -= 1
            self.cond.notify_all()
            return self.remaining[piece.table] == 0


def _compose(first: RowTransform | None, second: RowTransform | None) -> RowTransform | None:
    if first is None:
        return second
    if second is None:
        return first
    return lambda row: second(first(row))


async def relation_sizes(
    conn: asyncpg.Connection, plans: Mapping[str, TablePlan]
) -> dict[str, tuple[int, int]]:
    """(heap bytes, heap + TOAST + index bytes) per contract table."""
    names = [p.qualified for p in plans.values()]
    rows = await conn.fetch(
        "SELECT n, pg_relation_size(n::regclass) AS heap, pg_total_relation_size(n::regclass) AS total "
        "FROM unnest($1::text[]) AS n",
        names,
    )
    by_name = {r["n"]: (int(r["heap"]), int(r["total"])) for r in rows}
    return {t: by_name[p.qualified] for t, p in plans.items()}


class RunLoader:
    """Copies one run's rows and keeps what happened, including what an undo needs to know.

    After a failure, ``failed_table`` names the table whose copy raised first and
    ``stream_pids`` the backends of the stream connections it dropped (one may still be
    busy inside a statement, holding row locks the undo's deletes would wait for).
    """

    def __init__(
        self,
        plans: Mapping[str, TablePlan],
        dataset: Dataset,
        ids: IdSpace,
        options: LoadOptions,
        *,
        row_hooks: Mapping[str, PieceHook] | None = None,
        progress: ProgressCallback = null_progress,
    ) -> None:
        self.plans, self.dataset, self.ids, self.options = plans, dataset, ids, options
        self.row_hooks = dict(row_hooks or {})
        self.progress = progress
        self.order = load_order(plans)
        self.children = [t for t in self.order if t != "tenants"]
        self.rows: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}
        self.held: HeldTenants = {}
        self.failed_table: str | None = None
        self.stream_pids: tuple[int, ...] = ()
        self._started: dict[str, float] = {}

    def _failed(self, table: str) -> None:
        if self.failed_table is None:
            self.failed_table = table

    async def copy_tenants(self, conn: asyncpg.Connection, status_column: str | None) -> None:
        """Copy the tenants on ``conn``, in the caller's transaction.

        With parallel streams they are written on hold (``runs.tenants``), their real
        status kept in ``held`` for the caller's final transaction.
        """
        started = time.perf_counter()
        tenants = self.plans["tenants"]
        hold = hold_tenants(tenants, status_column, self.held) if self.options.parallel else None
        target = tenants.copy_target(_compose(tenants.transform, hold))
        stream = self.dataset.stream("tenants")
        batches = stream.batches(self.ids, self.options.batch_size)
        try:
            self.rows["tenants"] = await copy_rows(conn, target, batches, total=stream.count, progress=self.progress)
        except BaseException:
            self._failed("tenants")
            raise
        self.seconds["tenants"] = time.perf_counter() - started

    async def copy_children(self, conn: asyncpg.Connection) -> None:
        """One stream: every child table on ``conn``, in the caller's transaction."""
        await self._run_stream(conn, self._scheduler(), None)

    async def copy_children_on_streams(
        self, open_stream: Callable[[], Awaitable[asyncpg.Connection]], committed: TableCommitted
    ) -> None:
        """Parallel streams: open them, copy every child piece (one transaction each), close them.

        Streams commit with ``synchronous_commit = off``: their commits need not wait for the
        WAL flush, because nothing trusts a run until the caller's ``ready`` commit, which
        is synchronous and, WAL being ordered, durable only after them.
        """
        scheduler = self._scheduler()
        conns: list[asyncpg.Connection] = []
        try:
            for _ in range(min(self.options.streams, max(1, len(scheduler.pending)))):
                conns.append(await open_stream())
                await conns[-1].execute("SET synchronous_commit = off")
                if self.options.fk_triggers_off:
                    await conns[-1].execute(REPLICA_ROLE)
            await self._run_streams(conns, scheduler, committed)
        except BaseException:
            self.stream_pids = tuple(c.get_server_pid() for c in conns if not c.is_closed())
            for c in conns:
                drop_connection(c)
            raise
        for c in conns:
            await close_connection(c)

    async def _run_streams(
        self, conns: Sequence[asyncpg.Connection], scheduler: _Scheduler, committed: TableCommitted
    ) -> None:
        tasks = [asyncio.ensure_future(self._run_stream(c, scheduler, committed)) for c in conns]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # stop the other streams and collect their errors too: an exception left in a
            # task nobody awaits is printed as a traceback when the task is collected
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def _scheduler(self) -> _Scheduler:
        pieces = plan_pieces(self.dataset, self.children, self.options.streams, self.options.split_rows)
        if self.options.fk_triggers_off:  # with the triggers off, a child need not wait for its parents
            return _Scheduler(pieces, {})
        return _Scheduler(pieces, {t: set(self.plans[t].parents) & set(self.plans) for t in self.children})

    def announce_empty_tables(self) -> None:
        """Report the child tables with no rows as done (before the load starts)."""
        for table in self.children:  # tables with no rows are done at once
            if self.dataset.stream(table).count == 0:
                self.progress(ProgressEvent("table_start", table=table, total=0))
                self.progress(ProgressEvent("table_done", table=table, data={"rows": 0, "seconds": 0.0}))

    async def _run_stream(
        self, conn: asyncpg.Connection, scheduler: _Scheduler, committed: TableCommitted | None
    ) -> None:
        """Copy pieces on ``conn`` until none is left; ``committed`` set: one transaction per piece."""
        while (piece := await scheduler.take()) is not None:
            try:
                if committed is not None:
                    async with conn.transaction():
                        await self._copy_piece(conn, piece)
                else:
                    await self._copy_piece(conn, piece)
            except BaseException:
                self._failed(piece.table)
                raise
            if await scheduler.finish(piece):
                self._table_done(piece.table)
                if committed is not None:  # e.g. ANALYZE it now, while the other streams still load
                    await committed(piece.table, conn)

    async def _copy_piece(self, conn: asyncpg.Connection, piece: Piece) -> None:
        plan, stream = self.plans[piece.table], self.dataset.stream(piece.table)
        if piece.table not in self._started:
            self._started[piece.table] = time.perf_counter()
            self.progress(ProgressEvent("table_start", table=piece.table, total=stream.count))
        hook = self.row_hooks.get(piece.table)
        target = plan.copy_target(_compose(plan.transform, hook(piece) if hook else None))
        batches = stream.batches(self.ids, self.options.batch_size, start=piece.start, stop=piece.stop)
        copied = await copy_rows(conn, target, batches, progress=self.progress, announce=False)
        self.rows[piece.table] += copied  # after the await: other streams add to the same table

    def _table_done(self, table: str) -> None:
        self.seconds[table] = time.perf_counter() - self._started[table]
        rows = self.rows[table]
        self.progress(
            ProgressEvent("table_done", table=table, count=rows, data={"rows": rows, "seconds": self.seconds[table]})
        )

    def result(self, before: Mapping[str, tuple[int, int]], after: Mapping[str, tuple[int, int]]) -> LoadResult:
        """What was copied, with the bytes each table grew by between ``before`` and ``after``."""
        tables = []
        for table in self.order:
            plan = self.plans[table]
            tables.append(
                TableLoad(
                    table,
                    f"{plan.schema}.{plan.name}",
                    self.rows[table],
                    max(0, after[table][0] - before[table][0]),
                    max(0, after[table][1] - before[table][1]),
                    self.seconds.get(table, 0.0),
                )
            )
        return LoadResult(tuple(tables), self.held)


async def delete_run_rows(
    conn: asyncpg.Connection, plans: Mapping[str, TablePlan], tenant_ids: Sequence[Any]
) -> dict[str, int]:
    """Delete every row of the run's tenants from the tables ``up`` writes, children first.

    Used to undo a failed load; runs in the caller's transaction.  Identifiers are
    quoted (``quote_identifier``); the array type comes from a fixed whitelist.
    """
    deleted: dict[str, int] = {}
    for table in reversed(load_order(plans)):
        plan = plans[table]
        status = await conn.execute(
            f"DELETE FROM {plan.qualified} WHERE {quote_identifier(plan.tenant_column)} "
            f"= ANY($1::{plan.tenant_array_type})",
            list(tenant_ids),
        )
        deleted[table] = int(status.split()[-1]) if status.startswith("DELETE") else 0
    return deleted
