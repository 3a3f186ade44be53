"""Step 4 of ``provision up``: the ledger, the run's advisory lock, and the run's row, committed.

From here on a failure is undone (``undo``): the run has a row to mark ``failed``.  The
row keeps the settings ``down`` and ``status`` need later (the tables and their tenant
columns, the schema map, the key kind), never a password.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import asyncpg

from .._version import __version__
from ..progress import ProgressEvent
from ..runs import ledger
from ..schema.reflect import TablePlan
from ..target.resolve import ResolvedDatabase
from ..target.statedir import ensure_state_dir
from .fkcheck import FkCheckPlan
from .settings import PreparedRun, UpSettings
from .undo import RunState

__all__ = ["record_run"]


async def record_run(
    run: RunState, ctl: asyncpg.Connection, plans: Mapping[str, TablePlan], fk_checks: FkCheckPlan
) -> None:
    """Step 4: the ledger, the run's lock, and its row (status ``provisioning``), committed."""
    settings, prep = run.settings, run.prep
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
        settings=_ledger_settings(settings, prep, plans, run.db, fk_checks),
    )
    run.recorded = True
    run.phases["ledger"] = time.perf_counter() - t
    # announced only now: a refused ledger must not leave a run id on screen that names nothing
    run.progress(
        ProgressEvent(
            "info",
            message=f"run {run.run_id}, scale {prep.scale}, seed {prep.seed}, target {run.db.masked}",
            data={"run_id": run.run_id, "seed": prep.seed},
        )
    )


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
