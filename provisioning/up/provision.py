"""``provision up``: fill the platform's database with a run's data, record it, hand out logins.

The order of work is what makes a run safe to interrupt at any point:

1. validate every input (scale, counts, options, schema map) — nothing touched yet;
2. resolve the database (the remote guard runs before any connection) and connect;
3. reflect the live schema and plan every table (``reflect``) — still nothing written;
4. start hashing the passwords (threads), create the ledger if needed, take
   the run's advisory lock, record the run (status ``provisioning``) and commit;
5. reserve integer ids from the tables' sequences (integer keys only);
6. load (``bulkload``): tenants with their ``run_tenants`` rows first, then the children;
   with parallel streams, users are written with placeholder hashes while bcrypt still
   runs and get their real hashes as soon as it is done, so hashing overlaps the load;
7. ANALYZE the loaded tables; write ``credentials.csv``; in one transaction restore the
   tenants' status and mark the run ``ready`` (counts, fingerprint); write
   ``manifest.json`` last — its presence means the run is ready.

Any error, lost connection or Ctrl-C after step 4 deletes the run's rows (children
first, by tenant id), removes its credentials directory, and marks it ``failed``
(``uprun.failure``).  If even that is impossible (the server went away) the run stays
``provisioning`` with its tenants in the ledger, and ``provision down`` finishes the job.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .._version import __version__
from ..errors import ProvisioningFailed
from ..generate.binding import dataset_options, plan_tables
from ..generate.dataset import Dataset, GenerationSpec, IdSpace, IntegerIds, UuidIds
from ..generate.passwords import PasswordSet, estimate_hash_seconds
from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..runs import ledger
from ..schema.reflect import TablePlan, reflect_tables
from ..schema.schemamap import quote_identifier
from ..target.resolve import ResolvedDatabase, resolve_database
from ..target.statedir import ensure_state_dir
from .analyze import analyze_tables
from .credentials import apply_hashes, build_pool_files, pending_hashes, unique_password_hook
from .fkcheck import FkCheckPlan, plan_fk_checks
from .idblocks import reserve_id_blocks
from .load import load_run
from .session import APPLICATION_NAME, RunState, close_connection, failure, open_connection
from .settings import DEFAULT_BATCH_SIZE, DEFAULT_STREAMS, PreparedRun, UpResult, UpSettings, prepare_run

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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_column(plans: Mapping[str, TablePlan]) -> str | None:
    name = plans["tenants"].concept_column("status")
    return name if name is not None and plans["tenants"].position(name) is not None else None


def _announce_binding(plans: Mapping[str, TablePlan], progress: ProgressCallback) -> None:
    """Say once what is filled by type and which known concepts the live tables do not have."""
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
        absent = list(plan.dropped)  # the guide's columns; --dry-run lists every skipped concept
        if absent:
            progress(
                ProgressEvent(
                    "info",
                    table=plan.contract,
                    name="skipped",
                    message=f"{plan.schema}.{plan.name} has no column for {', '.join(absent)}; not written",
                )
            )


async def _restore_tenants(
    conn: asyncpg.Connection, plan: TablePlan, column: str, held: Mapping[str, list[Any]]
) -> None:
    for status, ids in held.items():
        await conn.execute(
            f"UPDATE {plan.qualified} SET {quote_identifier(column)} = $1 "
            f"WHERE {quote_identifier(plan.id_column)} = ANY($2::{plan.tenant_array_type})",
            status,
            ids,
        )


async def _apply_hashes(
    run: RunState,
    plan: TablePlan,
    column: str,
    hashing: asyncio.Task[PasswordSet],
    users_in: asyncio.Event,
    placeholders: tuple[str, ...],
) -> PasswordSet:
    """Once bcrypt is done and the users are committed, put the real hashes in (own connection)."""
    passwords = await hashing
    await users_in.wait()
    conn = await open_connection(run.db)
    run.side_conns.append(conn)
    try:
        updated = await apply_hashes(conn, plan, column, run.tenant_ids, placeholders, passwords.hashes)
    finally:
        run.side_conns.remove(conn)
        await close_connection(conn)
    if updated != run.prep.counts.users:
        raise ProvisioningFailed(
            f"Only {updated} of {run.prep.counts.users} users of run {run.run_id} got their password hash.",
            run_id=run.run_id,
            table="users",
        )
    return passwords


async def provision_up(settings: UpSettings, progress: ProgressCallback = null_progress) -> UpResult:
    """Provision one run; see the module docstring for the order of work and the guarantees."""
    started = time.perf_counter()
    prep = prepare_run(settings)
    db = resolve_database(settings.database_url, state_dir=prep.state_dir, allow_remote=settings.allow_remote)
    run = RunState(settings, prep, db, progress)
    ctl = await open_connection(db)
    run.ctl_pid = ctl.get_server_pid()
    hashing: asyncio.Task[PasswordSet] | None = None
    try:
        t = time.perf_counter()
        run.phase("reflect")
        live = await reflect_tables(db.target, prep.schema_map)
        plans = plan_tables(live, prep.schema_map)
        run.plans = plans
        _announce_binding(plans, progress)
        fk_checks = await plan_fk_checks(ctl, plans, settings.foreign_key_checks)
        run.phases["reflect"] = time.perf_counter() - t
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
            settings=_ledger_settings(settings, prep, plans, db, fk_checks),
        )
        run.recorded = True
        run.phases["ledger"] = time.perf_counter() - t
        # announced only now: a refused ledger must not leave a run id on screen that names nothing
        progress(
            ProgressEvent(
                "info",
                message=f"run {run.run_id}, scale {prep.scale}, seed {prep.seed}, target {db.masked}",
                data={"run_id": run.run_id, "seed": prep.seed},
            )
        )
        result = await _provision(run, ctl, plans, hashing, started, fk_checks)
    except BaseException as exc:
        if hashing is not None and not hashing.done():
            hashing.cancel()
        replacement = await failure(run, ctl, exc)
        if replacement is exc:
            raise
        raise replacement from exc
    await close_connection(ctl)
    return result


def _ledger_settings(
    settings: UpSettings,
    prep: PreparedRun,
    plans: Mapping[str, TablePlan],
    db: ResolvedDatabase,
    fk_checks: FkCheckPlan,
) -> dict[str, Any]:
    return {
        "foreign_key_checks": fk_checks.mode,
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
    run: RunState,
    ctl: asyncpg.Connection,
    plans: dict[str, TablePlan],
    hashing: asyncio.Task[PasswordSet],
    started: float,
    fk_checks: FkCheckPlan,
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
    hash_column = plans["users"].concept_column("password_hash") or ""
    options = dataset_options(plans)
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
        dataset = Dataset(spec, placeholders, **options)
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
        dataset = Dataset(spec, slot_hashes, **options)

    t = time.perf_counter()
    run.phase("load", streams=settings.streams, foreign_key_checks=fk_checks.mode)
    if not fk_checks.after_load and settings.foreign_key_checks == "auto":
        progress(ProgressEvent("info", message=f"foreign keys are checked per row: {fk_checks.reason}"))
    status_column = _status_column(plans)
    hooks = {}
    if unique is not None:
        hooks["users"] = unique_password_hook(plans["users"], unique.hashes)
    outcome = await load_run(
        ctl=ctl,
        open_worker=lambda: open_connection(run.db),
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
        fk_checks=fk_checks,
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
    progress(ProgressEvent("info", name="ready", message=f"run {run.run_id} ready", data={"run_id": run.run_id}))
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
        foreign_key_checks=fk_checks.mode,
    )
