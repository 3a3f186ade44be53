"""``provision up``: fill the platform's database with a run's data, record it, hand out logins.

The order of work is what makes a run safe to interrupt at any point:

1. validate every input (scale, counts, options, schema map) — nothing touched yet;
2. resolve the database (the remote guard runs before any connection) and connect;
3. reflect the live schema and plan every table (``reflect``) — still nothing written;
4. start hashing the passwords (worker processes), create the ledger if needed, take
   the run's advisory lock, record the run (status ``provisioning``) and commit;
5. reserve integer ids from the tables' sequences (integer keys only);
6. load (``bulkload``): tenants with their ``run_tenants`` rows first, then the children;
7. ANALYZE the loaded tables; write ``credentials.csv``; in one transaction restore the
   tenants' status and mark the run ``ready`` (counts, fingerprint); write
   ``manifest.json`` last — its presence means the run is ready.

Any error, lost connection or Ctrl-C after step 4 deletes the run's rows (children
first, by tenant id), removes its credentials directory, and marks it ``failed``.  If
even that is impossible (the server went away) the run stays ``provisioning`` with its
tenants in the ledger, and ``provision down`` finishes the job.
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from . import ledger
from ._version import __version__
from .bulkload import MIN_SPLIT_ROWS, TableLoad, analyze_tables, delete_run_rows, load_run
from .credentials import remove_run_dir
from .database import ResolvedDatabase, connect, resolve_database
from .dataset import OPTIONAL_COLUMNS, TABLE_COLUMNS, Dataset, GenerationSpec, IdSpace, IntegerIds, UuidIds
from .errors import InputError, Interrupted, ProvisionError, ProvisioningFailed
from .passwords import (
    DEFAULT_BCRYPT_COST,
    DEFAULT_PASSWORD_COUNT,
    PasswordSet,
    estimate_hash_seconds,
    hash_passwords,
    validate_password_options,
)
from .progress import ProgressCallback, ProgressEvent, null_progress
from .reflect import FilledColumn, TablePlan, plan_tables, reflect_tables
from .runpool import apply_hashes, build_pool_files, pending_hashes, unique_password_hook
from .scales import DEFAULT_SKEW, MAX_SKEW, ScaleCounts, resolve_counts
from .schema_map import SchemaMap, load_schema_map
from .sequences import reserve_id_blocks
from .statedir import default_state_dir, ensure_state_dir

__all__ = [
    "APPLICATION_NAME",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_STREAMS",
    "PreparedRun",
    "UpResult",
    "UpSettings",
    "prepare_run",
    "provision_up",
]

APPLICATION_NAME = "provision-up"
DEFAULT_BATCH_SIZE = 25_000
DEFAULT_STREAMS = 2
MAX_SEED = 2**63 - 1
_LABEL_MAX = 200
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class UpSettings:
    """Everything ``provision up`` (and its ``--dry-run``) needs; the CLI builds one from its options."""

    scale: str = "small"
    overrides: tuple[str, ...] = ()
    profile: Path | None = None
    seed: int | None = None  # None: a random seed, reported in the result
    skew: float | None = DEFAULT_SKEW  # None: uniform tenant sizes
    label: str | None = None
    schema_map: Path | None = None
    bcrypt_cost: int = DEFAULT_BCRYPT_COST
    password_count: int = DEFAULT_PASSWORD_COUNT
    unique_passwords: bool = False
    database_url: str | None = None
    allow_remote: bool = False
    state_dir: Path | None = None
    streams: int = DEFAULT_STREAMS  # 1: one transaction on one connection (atomic, slower)
    batch_size: int = DEFAULT_BATCH_SIZE
    split_rows: int = MIN_SPLIT_ROWS  # tables with at least this many rows are split over the streams
    ledger_schema: str = ledger.DEFAULT_LEDGER_SCHEMA


@dataclass(frozen=True)
class PreparedRun:
    """Validated inputs: what will be generated, before any database is touched."""

    scale: str
    counts: ScaleCounts
    seed: int
    skew: float | None
    schema_map: SchemaMap
    password_slots: int
    hash_count: int
    state_dir: Path


@dataclass(frozen=True)
class UpResult:
    run_id: str
    label: str | None
    scale: str
    seed: int
    fingerprint: str
    counts: dict[str, int]
    tables: tuple[TableLoad, ...]
    phases: dict[str, float]  # seconds per phase ("hash" overlaps "reflect"/"ledger")
    elapsed: float
    target: str  # masked
    run_dir: Path
    credentials_path: Path
    manifest_path: Path
    active_users: int
    password_count: int
    bcrypt_cost: int
    streams: int
    id_kind: str
    filled_columns: tuple[FilledColumn, ...] = ()
    dropped_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def heap_bytes(self) -> int:
        return sum(t.heap_bytes for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        """The JSON summary (``--json``): no password, the target masked."""
        d = asdict(self)
        d.update(
            run_dir=str(self.run_dir),
            credentials_path=str(self.credentials_path),
            manifest_path=str(self.manifest_path),
            rows=self.rows,
            heap_bytes=self.heap_bytes,
            rows_per_second=round(self.rows / self.elapsed, 1) if self.elapsed else None,
            heap_mb_per_second=round(self.heap_bytes / 1e6 / self.elapsed, 2) if self.elapsed else None,
        )
        d["phases"] = {k: round(v, 3) for k, v in self.phases.items()}
        d["elapsed"] = round(self.elapsed, 3)
        return d


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"The {name} must be a whole number from {low} to {high}, not {value!r}.")
    return value


def prepare_run(settings: UpSettings) -> PreparedRun:
    """Validate every input and resolve the counts; raises ``InputError``; touches nothing."""
    scale, counts = resolve_counts(settings.scale, profile=settings.profile, overrides=settings.overrides)
    seed = (
        secrets.randbelow(10**9) if settings.seed is None else _check_int("seed", settings.seed, 0, MAX_SEED)
    )
    if settings.skew is not None and (
        not isinstance(settings.skew, int | float) or not 0 <= settings.skew <= MAX_SKEW
    ):
        raise InputError(f"The skew must be between 0 and {MAX_SKEW:g}, not {settings.skew!r}.")
    validate_password_options(settings.password_count, settings.bcrypt_cost)
    _check_int("number of streams", settings.streams, 1, 16)
    _check_int("batch size", settings.batch_size, 1, 1_000_000)
    _check_int("split threshold", settings.split_rows, 1, 1 << 40)
    if settings.label is not None and (len(settings.label) > _LABEL_MAX or not settings.label.isprintable()):
        raise InputError(f"The label must be printable text of at most {_LABEL_MAX} characters.")
    if settings.unique_passwords and counts.users > 65_536:
        raise InputError(f"--unique-passwords supports at most 65,536 users, not {counts.users:,}.")
    schema_map = load_schema_map(settings.schema_map)
    slots = settings.password_count
    hash_count = counts.users if settings.unique_passwords else settings.password_count
    state_dir = Path(settings.state_dir) if settings.state_dir is not None else default_state_dir()
    return PreparedRun(scale, counts, seed, settings.skew, schema_map, slots, hash_count, state_dir)


async def _open(db: ResolvedDatabase) -> asyncpg.Connection:
    return await connect(db, server_settings={"application_name": APPLICATION_NAME})


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_column(plans: Mapping[str, TablePlan], schema_map: SchemaMap) -> str | None:
    name = schema_map.column_name("tenants", "status")
    return name if plans["tenants"].position(name) is not None else None


async def _restore_tenants(
    conn: asyncpg.Connection, plan: TablePlan, column: str, held: Mapping[str, list[Any]]
) -> None:
    from .schema_map import quote_identifier

    for status, ids in held.items():
        await conn.execute(
            f"UPDATE {plan.qualified} SET {quote_identifier(column)} = $1 "
            f"WHERE {quote_identifier(plan.id_column)} = ANY($2::{plan.tenant_array_type})",
            status,
            ids,
        )


class _Run:
    """One ``up`` in progress: holds what the undo needs if anything fails."""

    def __init__(
        self, settings: UpSettings, prep: PreparedRun, db: ResolvedDatabase, progress: ProgressCallback
    ):
        self.settings, self.prep, self.db, self.progress = settings, prep, db, progress
        self.run_id = ledger.new_run_id()
        self.phases: dict[str, float] = {}
        self.workers: list[asyncpg.Connection] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.side_conns: list[asyncpg.Connection] = []  # connections besides the load's workers
        self.plans: dict[str, TablePlan] = {}
        self.tenant_ids: list[Any] = []
        self.recorded = False
        self.failed_tables: list[str] = []
        self.ctl_pid: int | None = None

    @property
    def table(self) -> str:
        return self.failed_tables[0] if self.failed_tables else ""

    def phase(self, name: str, **data: Any) -> None:
        self.progress(ProgressEvent("phase", name=name, data=data))

    async def hash_passwords(self) -> PasswordSet:
        started = time.perf_counter()
        result = await hash_passwords(self.prep.hash_count, self.settings.bcrypt_cost, progress=self.progress)
        self.phases["hash"] = time.perf_counter() - started
        return result

    async def undo(self, ctl: asyncpg.Connection | None, error: str) -> str | None:
        """Delete the run's rows and mark it failed; return None on success, else why not.

        ``ctl`` is the control connection when it is healthy and idle, else None (then a
        new connection retakes the run's lock).  Backends of dropped connections may still
        be busy inside a statement (they notice a closed socket only when they next read
        from it), holding row locks the deletes would wait for: they are terminated first.
        """
        for task in self.tasks:
            task.cancel()
        dropped = [*self.workers, *self.side_conns]
        pids = [w.get_server_pid() for w in dropped]
        if ctl is None and self.ctl_pid is not None:
            pids.append(self.ctl_pid)
        for w in dropped:
            w.terminate()
        remove_run_dir(self.prep.state_dir, self.run_id)
        if not self.recorded:
            return None
        conn = ctl
        try:
            if conn is None or conn.is_closed():
                conn = await _open(self.db)
            await _stop_backends(conn, pids)
            if conn is not ctl:
                await conn.execute("SET lock_timeout = '30s'")
                await ledger.acquire_run_lock(conn, self.run_id, wait=True)
            async with conn.transaction():
                if self.tenant_ids:
                    await delete_run_rows(conn, self.plans, self.tenant_ids)
                await ledger.set_status(
                    conn, self.run_id, "failed", error=error[:500], schema=self.settings.ledger_schema
                )
            return None
        except (*_DB_ERRORS, ProvisionError) as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            if conn is not None and conn is not ctl:
                conn.terminate()


async def _apply_hashes(
    run: _Run,
    plan: TablePlan,
    column: str,
    hashing: asyncio.Task[PasswordSet],
    users_in: asyncio.Event,
    placeholders: tuple[str, ...],
) -> PasswordSet:
    """Once bcrypt is done and the users are committed, put the real hashes in (own connection)."""
    passwords = await hashing
    await users_in.wait()
    conn = await _open(run.db)
    run.side_conns.append(conn)
    try:
        updated = await apply_hashes(conn, plan, column, run.tenant_ids, placeholders, passwords.hashes)
    finally:
        run.side_conns.remove(conn)
        await _close(conn)
    if updated != run.prep.counts.users:
        raise ProvisioningFailed(
            f"Only {updated} of {run.prep.counts.users} users of run {run.run_id} got their password hash.",
            run_id=run.run_id,
            table="users",
        )
    return passwords


async def _stop_backends(conn: asyncpg.Connection, pids: list[int]) -> None:
    """Terminate our own dropped backends (matched by pid and application name), waiting for them."""
    if not pids:
        return
    wait = ", 5000" if conn.get_server_version().major >= 14 else ""
    await conn.execute(
        f"SELECT pg_terminate_backend(pid{wait}) FROM pg_stat_activity "
        "WHERE pid = ANY($1::int[]) AND application_name = $2 AND pid <> pg_backend_pid()",
        pids,
        APPLICATION_NAME,
    )


async def provision_up(settings: UpSettings, progress: ProgressCallback = null_progress) -> UpResult:
    """Provision one run; see the module docstring for the order of work and the guarantees."""
    started = time.perf_counter()
    prep = prepare_run(settings)
    db = resolve_database(settings.database_url, state_dir=prep.state_dir, allow_remote=settings.allow_remote)
    run = _Run(settings, prep, db, progress)
    ctl = await _open(db)
    run.ctl_pid = ctl.get_server_pid()
    hashing: asyncio.Task[PasswordSet] | None = None
    try:
        t = time.perf_counter()
        run.phase("reflect")
        live = await reflect_tables(db.target, prep.schema_map)
        plans = plan_tables(live, TABLE_COLUMNS, prep.schema_map, optional=OPTIONAL_COLUMNS)
        run.plans = plans
        for plan in plans.values():
            for f in plan.filled:
                progress(
                    ProgressEvent(
                        "warning",
                        table=plan.contract,
                        message=(
                            f"column {f.table}.{f.column} ({f.type}) is NOT NULL without a default and "
                            f"unknown to the toolkit; filling it with {f.value}"
                        ),
                    )
                )
        run.phases["reflect"] = time.perf_counter() - t
        progress(
            ProgressEvent(
                "info",
                message=f"run {run.run_id}, scale {prep.scale}, seed {prep.seed}, target {db.masked}",
                data={"run_id": run.run_id, "seed": prep.seed},
            )
        )
        if settings.unique_passwords:
            est = estimate_hash_seconds(prep.hash_count, settings.bcrypt_cost)
            progress(
                ProgressEvent(
                    "warning",
                    message=(
                        f"--unique-passwords: hashing {prep.hash_count:,} passwords at cost "
                        f"{settings.bcrypt_cost} will take about {est / 60:.1f} minutes"
                    ),
                )
            )
        run.phase("hash", count=prep.hash_count, cost=settings.bcrypt_cost)
        hashing = asyncio.create_task(run.hash_passwords())

        t = time.perf_counter()
        ensure_state_dir(prep.state_dir)  # refuse an unsafe state directory before writing anything
        await ledger.ensure_ledger(ctl, settings.ledger_schema)
        # the lock comes before the run's row: a 'provisioning' run is never without its lock
        await ledger.acquire_run_lock(ctl, run.run_id)
        await ledger.create_run(
            ctl,
            run_id=run.run_id,
            scale=prep.scale,
            seed=prep.seed,
            counts=prep.counts.as_dict(),
            toolkit_version=__version__,
            label=settings.label,
            schema=settings.ledger_schema,
            settings=_ledger_settings(settings, prep, plans, db),
        )
        run.recorded = True
        run.phases["ledger"] = time.perf_counter() - t
        result = await _provision(run, ctl, plans, hashing, started)
    except BaseException as exc:
        if hashing is not None and not hashing.done():
            hashing.cancel()
        replacement = await _fail(run, ctl, exc)
        if replacement is exc:
            raise
        raise replacement from exc
    await _close(ctl)
    return result


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except BaseException:
        conn.terminate()


async def _fail(run: _Run, ctl: asyncpg.Connection, exc: BaseException) -> BaseException:
    """Undo after ``exc`` and return the exception to raise (one sentence, run id included)."""
    interrupted = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
    if not run.recorded:  # nothing of the run was written yet
        for w in run.workers:
            w.terminate()
        await _close(ctl)
        return Interrupted("Interrupted before anything was written.") if interrupted else exc
    if isinstance(exc, ProvisionError):
        reason = exc.message.rstrip(".")
    elif isinstance(exc, asyncpg.PostgresError):
        reason = f"PostgreSQL refused a row{' of ' + run.table if run.table else ''}: {_first_line(exc)}"
    elif isinstance(exc, _DB_ERRORS):
        reason = f"the connection to the database was lost ({type(exc).__name__})"
    elif interrupted:
        reason = "interrupted"
    else:
        reason = f"unexpected {type(exc).__name__}: {_first_line(exc)}"
    # reuse the control connection only when it is certainly idle and healthy
    healthy = (
        isinstance(exc, asyncpg.PostgresError | ProvisionError)
        and not ctl.is_closed()
        and not ctl.is_in_transaction()
    )
    if not healthy:
        ctl.terminate()
    problem = await asyncio.shield(run.undo(ctl if healthy else None, reason))
    if healthy:
        await _close(ctl)
    if problem is None:
        tail = f"run {run.run_id} was rolled back and marked failed"
    else:
        tail = (
            f"run {run.run_id} could not be rolled back ({problem}); 'provision down {run.run_id}' "
            "removes what is left"
        )
    if interrupted:
        return Interrupted(f"Interrupted: {tail}.")
    return ProvisioningFailed(
        f"Provisioning failed ({reason}); {tail}.", run_id=run.run_id, table=run.table or None
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ledger_settings(
    settings: UpSettings, prep: PreparedRun, plans: Mapping[str, TablePlan], db: ResolvedDatabase
) -> dict[str, Any]:
    return {
        "schema_map": prep.schema_map.as_dict(),
        "skew": prep.skew,
        "password_count": settings.password_count,
        "unique_passwords": settings.unique_passwords,
        "bcrypt_cost": settings.bcrypt_cost,
        "streams": settings.streams,
        "id_kind": plans["tenants"].id_kind,
        "tables": {
            t: {"schema": p.schema, "name": p.name, "tenant_column": p.tenant_column}
            for t, p in plans.items()
        },
        "target": db.masked,
        "profile": str(settings.profile) if settings.profile else None,
        "overrides": list(settings.overrides),
    }


async def _provision(
    run: _Run,
    ctl: asyncpg.Connection,
    plans: dict[str, TablePlan],
    hashing: asyncio.Task[PasswordSet],
    started: float,
) -> UpResult:
    settings, prep, progress = run.settings, run.prep, run.progress
    counts = prep.counts.as_dict()
    ids: IdSpace
    if plans["tenants"].id_kind == "integer":
        ids = IntegerIds(await reserve_id_blocks(ctl, plans, counts))
    else:
        ids = UuidIds(run.run_id)
    spec = GenerationSpec(
        seed=prep.seed,
        namespace=run.run_id,
        counts=prep.counts,
        skew=prep.skew,
        password_slots=prep.password_slots,
    )
    hash_column = prep.schema_map.column_name("users", "hashed_password")
    # With parallel streams, users are loaded with placeholders while bcrypt still runs
    # (see runpool.pending_hashes), so hashing overlaps the load instead of preceding it.
    deferred = (
        settings.streams > 1
        and not settings.unique_passwords
        and plans["users"].position(hash_column) is not None
    )
    unique: PasswordSet | None = None
    apply_task: asyncio.Task[PasswordSet] | None = None
    run.tenant_ids = [ids.id("tenants", i) for i in range(prep.counts.tenants)]
    load_progress = progress
    if deferred:
        placeholders = pending_hashes(run.run_id, prep.password_slots)
        dataset = Dataset(spec, placeholders)
        users_in = asyncio.Event()

        def load_progress(event: ProgressEvent) -> None:
            if event.kind == "table_done" and event.table == "users":
                users_in.set()
            progress(event)

        apply_task = asyncio.create_task(
            _apply_hashes(run, plans["users"], hash_column, hashing, users_in, placeholders)
        )
        run.tasks.append(apply_task)
    else:
        passwords = await hashing
        unique = passwords if settings.unique_passwords else None
        slot_hashes = (
            passwords.hashes[: prep.password_slots] if unique is None else ("",) * prep.password_slots
        )
        dataset = Dataset(spec, slot_hashes)

    t = time.perf_counter()
    run.phase("load", streams=settings.streams)
    status_column = _status_column(plans, prep.schema_map)
    hooks = {}
    if unique is not None:
        hooks["users"] = unique_password_hook(plans["users"], prep.schema_map, unique.hashes)
    outcome = await load_run(
        ctl=ctl,
        open_worker=lambda: _open(run.db),
        plans=plans,
        dataset=dataset,
        ids=ids,
        run_id=run.run_id,
        ledger_schema=settings.ledger_schema,
        streams=settings.streams,
        batch_size=settings.batch_size,
        split_rows=settings.split_rows,
        tenant_status_column=status_column,
        hooks=hooks,
        progress=load_progress,
        workers=run.workers,
        failed=run.failed_tables,
    )
    if apply_task is not None:
        passwords = await apply_task
    run.phases["load"] = time.perf_counter() - t
    for load in outcome.tables:
        if load.rows != counts[load.table]:
            raise ProvisioningFailed(
                f"Table {load.name} got {load.rows} rows instead of {counts[load.table]}.",
                run_id=run.run_id,
                table=load.table,
            )
    fingerprint = dataset.fingerprint()

    t = time.perf_counter()
    run.phase("analyze")
    left = {t: p for t, p in plans.items() if t not in outcome.analyzed}
    await analyze_tables([ctl, *[w for w in run.workers if not w.is_closed()]], left, progress)
    for w in run.workers:
        await w.close()
    run.workers.clear()
    run.phases["analyze"] = time.perf_counter() - t

    t = time.perf_counter()
    run.phase("finalize")
    created_at = datetime.now(UTC)
    pool = build_pool_files(
        run_id=run.run_id,
        state_dir=prep.state_dir,
        dataset=dataset,
        ids=ids,
        passwords=passwords,
        unique=unique is not None,
        manifest_base={
            "label": settings.label,
            "scale": prep.scale,
            "seed": prep.seed,
            "fingerprint": fingerprint,
            "toolkit_version": __version__,
            "created_at": created_at.isoformat(),
            "target": run.db.masked,
            "counts": counts,
        },
    )
    async with ctl.transaction():
        if status_column is not None and outcome.tenant_status:
            await _restore_tenants(ctl, plans["tenants"], status_column, outcome.tenant_status)
        await ledger.set_status(
            ctl, run.run_id, "ready", fingerprint=fingerprint, counts=counts, schema=settings.ledger_schema
        )
    manifest_path = pool.write_manifest()
    run.phases["finalize"] = time.perf_counter() - t
    elapsed = time.perf_counter() - started
    run.phases["total"] = elapsed
    progress(ProgressEvent("info", message=f"run {run.run_id} ready", data={"run_id": run.run_id}))
    return UpResult(
        run_id=run.run_id,
        label=settings.label,
        scale=prep.scale,
        seed=prep.seed,
        fingerprint=fingerprint,
        counts=counts,
        tables=tuple(outcome.tables),
        phases=dict(run.phases),
        elapsed=elapsed,
        target=run.db.masked,
        run_dir=pool.run_dir,
        credentials_path=pool.credentials_path,
        manifest_path=manifest_path,
        active_users=pool.active_users,
        password_count=len(passwords),
        bcrypt_cost=settings.bcrypt_cost,
        streams=settings.streams,
        id_kind=plans["tenants"].id_kind,
        filled_columns=tuple(f for p in plans.values() for f in p.filled),
        dropped_columns={t: p.dropped for t, p in plans.items() if p.dropped},
        peak_rss_mb=_peak_rss_mb(),
    )
