"""Load a run's tables: tenants first, then the children, on one or several COPY streams.

Why several streams: in a bulk load the PostgreSQL backend is the bottleneck (index
maintenance, foreign-key checks, WAL), and one backend uses one core.  With
``streams >= 2`` the child tables are cut into pieces (whole tables, and the big ones
split into row ranges that ``TableStream.ranges`` aligns with the fingerprint chunks)
and loaded on ``streams`` connections at once, each piece in its own transaction, a
piece starting only once every table it references by foreign key is committed.  That
is not one transaction, so a run is *cleanly undoable* rather than atomic:

- the tenants and their ``run_tenants`` ledger rows are committed together, before any
  child row (the ledger invariant: a killed ``up`` can always be finished by ``down``);
- while loading, the run's tenants carry status ``provisioning`` so the platform refuses
  their logins; the caller restores their real status in its final transaction;
- on any failure the caller deletes the run's rows by tenant id (see ``delete_run_rows``).

With ``streams == 1`` everything (tenants, ledger rows, children) is one transaction on
the caller's connection: atomic, and slower on a multi-core server.
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
from ..runs.ledger import record_tenants
from ..schema.reflect import TablePlan
from ..schema.schemamap import quote_identifier
from ..target.copyload import Row, RowTransform, copy_rows
from .analyze import analyze_table
from .fkcheck import REPLICA_ROLE, REPLICA_ROLE_LOCAL, FkCheckPlan, verify_foreign_keys

__all__ = [
    "HOLD_STATUS",
    "LoadOutcome",
    "Piece",
    "TableLoad",
    "delete_run_rows",
    "load_order",
    "load_run",
    "plan_pieces",
    "relation_sizes",
]

HOLD_STATUS = "provisioning"  # tenant status while a parallel load is in flight
MIN_SPLIT_ROWS = 30_000  # tables smaller than this are loaded as one piece
PieceHook = Callable[["Piece"], RowTransform | None]


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


@dataclass
class LoadOutcome:
    tables: list[TableLoad] = field(default_factory=list)
    tenant_status: dict[str, list[Any]] = field(default_factory=dict)  # final status → tenant ids (held ones)
    analyzed: set[str] = field(default_factory=set)  # tables already ANALYZEd during the load

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


def _tenant_ids(dataset: Dataset, ids: IdSpace) -> list[Any]:
    return [ids.id("tenants", i) for i in range(dataset.spec.counts.tenants)]


def _hold_tenants(plan: TablePlan, status_column: str | None, outcome: LoadOutcome) -> RowTransform | None:
    """Write tenants with status ``provisioning`` and remember each one's real status."""
    pos = plan.position(status_column) if status_column else None
    id_pos = plan.position(plan.id_column)
    if pos is None or id_pos is None:
        return None
    held = outcome.tenant_status

    def hold(row: Row) -> Row:
        held.setdefault(row[pos], []).append(row[id_pos])
        return (*row[:pos], HOLD_STATUS, *row[pos + 1 :])

    return hold


async def load_run(
    *,
    ctl: asyncpg.Connection,
    open_worker: Callable[[], Awaitable[asyncpg.Connection]],
    plans: Mapping[str, TablePlan],
    dataset: Dataset,
    ids: IdSpace,
    run_id: str,
    ledger_schema: str,
    streams: int = 2,
    batch_size: int = 25_000,
    split_rows: int = MIN_SPLIT_ROWS,
    tenant_status_column: str | None = None,
    hooks: Mapping[str, PieceHook] | None = None,
    progress: ProgressCallback = null_progress,
    workers: list[asyncpg.Connection] | None = None,
    failed: list[str] | None = None,
    fk_checks: FkCheckPlan | None = None,
) -> LoadOutcome:
    """Load every table of ``dataset``; the ledger's ``run_tenants`` rows are written here.

    ``workers`` (a list the caller owns) receives the worker connections as they are
    opened, so that the caller can stop them when it must undo a failed load; ``failed``
    receives the name of the table whose load raised.  With ``fk_checks.after_load`` the
    child tables are copied with the foreign-key triggers off and the keys are verified
    set-based before this returns (``fkcheck``); in a single-stream load, inside its
    transaction.

    Parallel streams commit with ``synchronous_commit = off``: their commits need not wait
    for the WAL flush, because nothing trusts a run until the control connection's
    ``ready`` commit, which is synchronous and, WAL being ordered, durable only after them.
    """
    failed = failed if failed is not None else []
    order = load_order(plans)
    outcome = LoadOutcome()
    before = await relation_sizes(ctl, plans)
    seconds: dict[str, float] = {}
    rows: Counter[str] = Counter()
    hooks = dict(hooks or {})
    tenants = plans["tenants"]
    tenant_ids = _tenant_ids(dataset, ids)
    parallel = streams > 1

    async def copy_tenants(conn: asyncpg.Connection) -> None:
        started = time.perf_counter()
        await record_tenants(conn, run_id, tenant_ids, ledger_schema)
        hold = _hold_tenants(tenants, tenant_status_column, outcome) if parallel else None
        target = tenants.copy_target(_compose(tenants.transform, hold))
        stream = dataset.stream("tenants")
        failed.append("tenants")  # popped below once the tenants are in
        rows["tenants"] = await copy_rows(
            conn, target, stream.batches(ids, batch_size), total=stream.count, progress=progress
        )
        seconds["tenants"] = time.perf_counter() - started
        failed.remove("tenants")

    children = [t for t in order if t != "tenants"]
    pieces = plan_pieces(dataset, children, streams, split_rows)
    checks = fk_checks if fk_checks is not None and fk_checks.after_load else None  # set-based, after the load
    after_load = checks is not None
    # with the foreign-key triggers off, a child need not wait for its parents' commit
    scheduler = _Scheduler(pieces, {} if after_load else {t: set(plans[t].parents) & set(plans) for t in children})
    started_at: dict[str, float] = {}
    for table in children:  # tables with no rows are done at once
        if dataset.stream(table).count == 0:
            progress(ProgressEvent("table_start", table=table, total=0))
            progress(ProgressEvent("table_done", table=table, data={"rows": 0, "seconds": 0.0}))

    async def run_worker(conn: asyncpg.Connection, own_transactions: bool) -> None:
        while (piece := await scheduler.take()) is not None:
            plan, stream = plans[piece.table], dataset.stream(piece.table)
            if piece.table not in started_at:
                started_at[piece.table] = time.perf_counter()
                progress(ProgressEvent("table_start", table=piece.table, total=stream.count))
            hook = hooks.get(piece.table)
            target = plan.copy_target(_compose(plan.transform, hook(piece) if hook else None))
            batches = stream.batches(ids, batch_size, start=piece.start, stop=piece.stop)
            try:
                if own_transactions:
                    async with conn.transaction():
                        n = await copy_rows(conn, target, batches, progress=progress, announce=False)
                else:
                    n = await copy_rows(conn, target, batches, progress=progress, announce=False)
            except BaseException:
                failed.append(piece.table)
                raise
            rows[piece.table] += n
            if await scheduler.finish(piece):
                seconds[piece.table] = time.perf_counter() - started_at[piece.table]
                progress(
                    ProgressEvent(
                        "table_done",
                        table=piece.table,
                        count=rows[piece.table],
                        data={"rows": rows[piece.table], "seconds": seconds[piece.table]},
                    )
                )
                if own_transactions:  # committed: analyze it now, while the other streams still load
                    await analyze_table(conn, plan)
                    outcome.analyzed.add(piece.table)

    async def verify() -> None:
        if checks is not None:
            await verify_foreign_keys(ctl, checks, plans, tenant_ids)

    if not parallel:
        async with ctl.transaction():
            await copy_tenants(ctl)
            if after_load:
                await ctl.execute(REPLICA_ROLE_LOCAL)
            await run_worker(ctl, own_transactions=False)
            await verify()
    else:
        async with ctl.transaction():
            await copy_tenants(ctl)
        opened = workers if workers is not None else []
        for _ in range(min(streams, max(1, len(pieces)))):
            conn = await open_worker()
            opened.append(conn)
            await conn.execute("SET synchronous_commit = off")
            if after_load:
                await conn.execute(REPLICA_ROLE)
        try:
            tasks = [asyncio.ensure_future(run_worker(c, own_transactions=True)) for c in opened]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                # stop the other streams and collect their errors too: an exception left in a
                # task nobody awaits is printed as a traceback when the task is collected
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        finally:
            if workers is None:  # we own them
                for c in opened:
                    c.terminate()
        await verify()
    after = await relation_sizes(ctl, plans)
    for table in order:
        plan = plans[table]
        outcome.tables.append(
            TableLoad(
                table,
                f"{plan.schema}.{plan.name}",
                rows[table],
                max(0, after[table][0] - before[table][0]),
                max(0, after[table][1] - before[table][1]),
                seconds.get(table, 0.0),
            )
        )
    return outcome


async def delete_run_rows(
    conn: asyncpg.Connection, plans: Mapping[str, TablePlan], tenant_ids: Sequence[Any]
) -> dict[str, int]:
    """Delete every row of the run's tenants from the tables ``up`` writes, children first.

    Used to undo a failed load; runs in the caller's transaction.  Identifiers are
    quoted by SQLAlchemy; the array type comes from a fixed whitelist.
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
