"""``provision up``: fill the platform's database with a run's data, record it, hand out logins.

The order of work is what makes a run safe to interrupt at any point:

1. validate every input (scale, counts, options, schema map) — nothing touched yet;
2. resolve the database (the remote guard runs before any connection) and connect;
3. reflect the live schema and plan every table (``reflect``) — still nothing written;
4. start hashing the passwords (threads), create the ledger if needed, take
   the run's advisory lock, record the run (status ``provisioning``) and commit;
5. reserve integer ids from the tables' sequences (integer keys only);
6. load (``load``): tenants with their ``run_tenants`` rows first, then the children;
   with parallel streams, users are written with placeholder hashes while bcrypt still
   runs and get their real hashes as soon as bcrypt is done and the users are committed
   (the loader's ``committed`` hook says when), so hashing overlaps the load; the
   foreign keys are checked set-based after the load when the triggers were off;
7. ANALYZE the loaded tables; write ``credentials.csv``; in one transaction restore the
   tenants' status and mark the run ``ready`` (counts, fingerprint); write
   ``manifest.json`` last — its presence means the run is ready.

Any error, lost connection or Ctrl-C after step 4 deletes the run's rows (children
first, by tenant id), removes its credentials directory, and marks it ``failed``
(``undo.failure``).  If even that is impossible (the server went away) the run stays
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
from ..generate.dataset import DEFAULT_BATCH_SIZE, Dataset, GenerationSpec, IdSpace, IntegerIds, UuidIds
from ..generate.passwords import PasswordSet
from ..progress import ProgressCallback, ProgressEvent, null_progress
from ..runs import ledger
from ..runs.tenants import restore_tenants
from ..schema.reflect import TablePlan, reflect_tables
from ..target.resolve import resolve_database
from ..target.session import UP_SESSION, close_connection, open_connection
from .analyze import analyze_table, analyze_tables
from .credentials import PoolFiles, build_pool_files
from .fkcheck import REPLICA_ROLE_LOCAL, FkCheckPlan, plan_fk_checks, verify_foreign_keys
from .hashing import PasswordStep, start_hashing
from .idblocks import reserve_id_blocks
from .load import LoadOptions, LoadResult, RunLoader, TableCommitted, relation_sizes
from .record import record_run
from .settings import DEFAULT_STREAMS, PreparedRun, UpResult, UpSettings, prepare_run
from .undo import RunState, failure

__all__ = [
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


async def provision_up(settings: UpSettings, progress: ProgressCallback = null_progress) -> UpResult:
    """Provision one run; see the module docstring for the order of work and the guarantees."""
    started = time.perf_counter()
    prep = prepare_run(settings)
    db = resolve_database(settings.database_url, state_dir=prep.state_dir, allow_remote=settings.allow_remote)
    run = RunState(settings, prep, db, progress)
    ctl = await open_connection(db, UP_SESSION)
    run.ctl_pid = ctl.get_server_pid()
    hashing: asyncio.Task[PasswordSet] | None = None
    try:
        plans, fk_checks = await _reflect(run, ctl)
        hashing = start_hashing(run)
        await record_run(run, ctl, plans, fk_checks)
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


async def _reflect(run: RunState, ctl: asyncpg.Connection) -> tuple[dict[str, TablePlan], FkCheckPlan]:
    """Step 3: the live tables, their plans, and how foreign keys will be checked (writes nothing)."""
    t = time.perf_counter()
    run.phase("reflect")
    live = await reflect_tables(run.db.target, run.prep.schema_map)
    plans = plan_tables(live, run.prep.schema_map)
    run.plans = plans
    _announce_binding(plans, run.progress)
    fk_checks = await plan_fk_checks(ctl, plans, run.settings.foreign_key_checks)
    run.phases["reflect"] = time.perf_counter() - t
    return plans, fk_checks


async def _id_space(run: RunState, ctl: asyncpg.Connection, plans: Mapping[str, TablePlan]) -> IdSpace:
    """Step 5: integer keys come from blocks reserved in the tables' sequences; UUIDs from the run id."""
    if plans["tenants"].id_kind == "integer":
        ids: IdSpace = IntegerIds(await reserve_id_blocks(ctl, plans, run.prep.counts.as_dict()))
    else:
        ids = UuidIds(run.run_id)
    run.tenant_ids = [ids.id("tenants", i) for i in range(run.prep.counts.tenants)]
    return ids


async def _provision(
    run: RunState,
    ctl: asyncpg.Connection,
    plans: dict[str, TablePlan],
    hashing: asyncio.Task[PasswordSet],
    started: float,
    fk_checks: FkCheckPlan,
) -> UpResult:
    """Steps 5 to 7 of the module docstring, once the run is recorded."""
    prep = run.prep
    ids = await _id_space(run, ctl, plans)
    spec = GenerationSpec(
        seed=prep.seed, namespace=run.run_id, counts=prep.counts, skew=prep.skew, password_slots=prep.password_slots
    )
    step = PasswordStep(run, plans, hashing)
    dataset = Dataset(spec, await step.slot_hashes(), **dataset_options(plans))
    analyzed: set[str] = set()

    async def committed(table: str, conn: asyncpg.Connection) -> None:
        if table == "users":
            step.users_committed()
        await analyze_table(conn, plans[table])  # while the other streams still load
        analyzed.add(table)

    t = time.perf_counter()
    run.phase("load", streams=run.settings.streams, foreign_key_checks=fk_checks.mode)
    if not fk_checks.after_load and run.settings.foreign_key_checks == "auto":
        run.progress(ProgressEvent("info", message=f"foreign keys are checked per row: {fk_checks.reason}"))
    options = _load_options(run, fk_checks)
    loader = RunLoader(plans, dataset, ids, options, row_hooks=step.row_hooks(), progress=run.progress)
    loaded = await _load(run, ctl, loader, fk_checks, committed)
    passwords = await step.passwords()
    run.phases["load"] = time.perf_counter() - t
    _check_counts(run, loaded)
    fingerprint = dataset.fingerprint()

    t = time.perf_counter()
    run.phase("analyze")
    await analyze_tables([ctl], {t: p for t, p in plans.items() if t not in analyzed}, run.progress)
    run.phases["analyze"] = time.perf_counter() - t

    t = time.perf_counter()
    run.phase("finalize")
    pool = build_pool_files(
        run_id=run.run_id,
        state_dir=prep.state_dir,
        dataset=dataset,
        ids=ids,
        passwords=passwords,
        unique=step.unique is not None,
        manifest_base=_manifest_base(run, fingerprint),
    )
    await _mark_ready(run, ctl, plans, loaded, fingerprint)
    manifest_path = pool.write_manifest()
    run.phases["finalize"] = time.perf_counter() - t
    return _result(run, plans, fk_checks, loaded, pool, manifest_path, fingerprint, len(passwords), started)


def _load_options(run: RunState, fk_checks: FkCheckPlan) -> LoadOptions:
    settings = run.settings
    return LoadOptions(settings.streams, settings.batch_size, settings.split_rows, fk_checks.after_load)


async def _load(
    run: RunState,
    ctl: asyncpg.Connection,
    loader: RunLoader,
    fk_checks: FkCheckPlan,
    committed: TableCommitted,
) -> LoadResult:
    """Step 6: the tenants with their ledger rows, the children, then the set-based key checks.

    The ledger's ``run_tenants`` rows commit in the tenants' own transaction (a killed
    ``up`` can always be finished by ``down``).  One stream: everything, the key checks
    included, is one transaction on ``ctl``.
    """
    run.loader = loader
    plans = loader.plans
    before = await relation_sizes(ctl, plans)
    loader.announce_empty_tables()
    if loader.options.parallel:
        async with ctl.transaction():
            await _copy_tenants(run, ctl, loader)
        await loader.copy_children_on_streams(lambda: open_connection(run.db, UP_SESSION), committed)
        await _verify_keys(run, ctl, loader, fk_checks)
    else:
        async with ctl.transaction():
            await _copy_tenants(run, ctl, loader)
            if loader.options.fk_triggers_off:
                await ctl.execute(REPLICA_ROLE_LOCAL)
            await loader.copy_children(ctl)
            await _verify_keys(run, ctl, loader, fk_checks)
    return loader.result(before, await relation_sizes(ctl, plans))


async def _copy_tenants(run: RunState, ctl: asyncpg.Connection, loader: RunLoader) -> None:
    await ledger.record_tenants(ctl, run.run_id, run.tenant_ids, run.settings.ledger_schema)
    await loader.copy_tenants(ctl, _status_column(loader.plans))


async def _verify_keys(run: RunState, ctl: asyncpg.Connection, loader: RunLoader, checks: FkCheckPlan) -> None:
    """The set-based foreign-key checks of a load copied with the triggers off (``fkcheck``)."""
    if checks.after_load:
        await verify_foreign_keys(ctl, checks, loader.plans, run.tenant_ids)


def _check_counts(run: RunState, loaded: LoadResult) -> None:
    counts = run.prep.counts.as_dict()
    for load in loaded.tables:
        if load.rows != counts[load.table]:
            raise ProvisioningFailed(
                f"Table {load.name} got {load.rows} rows instead of {counts[load.table]}.",
                run_id=run.run_id,
                table=load.table,
            )


def _manifest_base(run: RunState, fingerprint: str) -> dict[str, Any]:
    prep = run.prep
    return {
        "label": run.settings.label,
        "scale": prep.scale,
        "seed": prep.seed,
        "fingerprint": fingerprint,
        "toolkit_version": __version__,
        "created_at": datetime.now(UTC).isoformat(),
        "target": run.db.masked,
        "counts": prep.counts.as_dict(),
    }


async def _mark_ready(
    run: RunState, ctl: asyncpg.Connection, plans: Mapping[str, TablePlan], loaded: LoadResult, fingerprint: str
) -> None:
    """One transaction: the held tenants get their real status back, and the run is ``ready``."""
    status_column = _status_column(plans)
    async with ctl.transaction():
        if status_column is not None and loaded.held:
            await restore_tenants(ctl, plans["tenants"], status_column, loaded.held)
        await ledger.set_status(
            ctl,
            run.run_id,
            "ready",
            fingerprint=fingerprint,
            counts=run.prep.counts.as_dict(),
            schema=run.settings.ledger_schema,
        )


def _result(
    run: RunState,
    plans: Mapping[str, TablePlan],
    fk_checks: FkCheckPlan,
    loaded: LoadResult,
    pool: PoolFiles,
    manifest_path: Any,
    fingerprint: str,
    password_count: int,
    started: float,
) -> UpResult:
    settings, prep = run.settings, run.prep
    elapsed = time.perf_counter() - started
    run.phases["total"] = elapsed
    run.progress(ProgressEvent("info", name="ready", message=f"run {run.run_id} ready", data={"run_id": run.run_id}))
    return UpResult(
        run_id=run.run_id,
        label=settings.label,
        scale=prep.scale,
        seed=prep.seed,
        fingerprint=fingerprint,
        counts=prep.counts.as_dict(),
        tables=loaded.tables,
        phases=dict(run.phases),
        elapsed=elapsed,
        target=run.db.masked,
        run_dir=pool.run_dir,
        credentials_path=pool.credentials_path,
        manifest_path=manifest_path,
        active_users=pool.active_users,
        password_count=password_count,
        bcrypt_cost=settings.bcrypt_cost,
        streams=settings.streams,
        id_kind=plans["tenants"].id_kind,
        filled_columns=tuple(f for p in plans.values() for f in p.filled),
        dropped_columns={t: p.dropped for t, p in plans.items() if p.dropped},
        peak_rss_mb=_peak_rss_mb(),
        foreign_key_checks=fk_checks.mode,
    )
