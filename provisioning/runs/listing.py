"""``provision runs`` and ``provision status``: what the ledger knows, and what is really there.

``list_runs`` reads the ledger.  ``run_status`` adds, for one run, the live row count of
every table ``up`` wrote, restricted to the run's tenants: the ledger says what should
be there, the counts say what is (a run being torn down, or rows the platform added
during a load test, show up as a difference).  Table names come from what ``up``
stored with the run (its schema map), so a run made with a map is counted where it
was written.  Reading only; never writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from ..schema.concepts import CONTRACT_TABLES
from ..schema.schemamap import SchemaMap, parse_schema_map
from ..target.identifiers import key_in, qualified_name
from ..target.resolve import connect, resolve_database
from ..target.statedir import default_state_dir
from . import ledger
from .poolfile import MANIFEST_FILE, run_dir

__all__ = ["RunList", "RunStatusReport", "TableCount", "list_runs", "run_status", "run_summary"]


@dataclass(frozen=True)
class TableCount:
    table: str
    name: str
    expected: int
    live: int | None  # None: the table is gone


@dataclass(frozen=True)
class RunStatusReport:
    target: str
    run: ledger.RunRecord
    live: bool  # a process holds the run's lock right now
    tables: tuple[TableCount, ...]
    credentials_dir: Path | None  # the pool directory, when its manifest exists

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            **run_summary(self.run),
            "live": self.live,
            "tables": [
                {"table": t.table, "name": t.name, "expected": t.expected, "live": t.live}
                for t in self.tables
            ],
            "credentials_dir": str(self.credentials_dir) if self.credentials_dir else None,
        }


@dataclass(frozen=True)
class RunList:
    target: str
    runs: tuple[ledger.RunRecord, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "runs": [run_summary(r) for r in self.runs]}


def run_summary(run: ledger.RunRecord) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "label": run.label,
        "scale": run.scale,
        "seed": run.seed,
        "status": run.status,
        "counts": run.counts,
        "rows": sum(run.counts.values()),
        "tenants": run.tenant_count,
        "fingerprint": run.fingerprint,
        "toolkit_version": run.toolkit_version,
        "created_at": run.created_at.isoformat(),
        "updated_at": run.updated_at.isoformat(),
        "error": run.error,
    }


async def _open(
    database_url: str | None, state_dir: Path | None, allow_remote: bool
) -> tuple[asyncpg.Connection, str]:
    db = resolve_database(database_url, state_dir=state_dir, allow_remote=allow_remote)
    return await connect(db), db.masked


async def list_runs(
    *,
    database_url: str | None = None,
    state_dir: Path | None = None,
    allow_remote: bool = False,
    statuses: tuple[str, ...] = (),
    ledger_schema: str = ledger.DEFAULT_LEDGER_SCHEMA,
) -> RunList:
    """Every run the target's ledger knows, newest first (empty without a ledger)."""
    conn, target = await _open(database_url, state_dir, allow_remote)
    try:
        runs = await ledger.list_runs(conn, statuses=list(statuses) or None, schema=ledger_schema)
    finally:
        await conn.close()
    return RunList(target, tuple(runs))


def _tables_of(run: ledger.RunRecord) -> dict[str, tuple[str, str, str]]:
    """(schema, table, tenant column) per contract table, as ``up`` wrote them."""
    stored = run.settings.get("tables")
    if isinstance(stored, dict) and stored:
        order = [t for t in CONTRACT_TABLES if t in stored] + sorted(set(stored) - set(CONTRACT_TABLES))
        return {
            t: (str(stored[t]["schema"]), str(stored[t]["name"]), str(stored[t]["tenant_column"]))
            for t in order
        }
    raw = run.settings.get("schema_map")
    smap = (
        parse_schema_map(raw, source=f"stored with run {run.run_id}")
        if isinstance(raw, dict)
        else SchemaMap()
    )
    return {
        t: (smap.schema, smap.table_name(t), smap.column_name(t, "id" if t == "tenants" else "tenant_id"))
        for t in CONTRACT_TABLES
    }


async def _count(
    conn: asyncpg.Connection, schema: str, table: str, column: str, tenant_ids: list[str], id_kind: object
) -> int | None:
    qualified = qualified_name(schema, table)
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified):
        return None
    where = key_in(column, id_kind, "$1")
    return int(await conn.fetchval(f"SELECT count(*) FROM {qualified} WHERE {where}", tenant_ids))


async def run_status(
    run_id: str | None = None,
    *,
    database_url: str | None = None,
    state_dir: Path | None = None,
    allow_remote: bool = False,
    ledger_schema: str = ledger.DEFAULT_LEDGER_SCHEMA,
) -> RunStatusReport:
    """One run (default: the newest) with live row counts per table for its tenants."""
    conn, target = await _open(database_url, state_dir, allow_remote)
    try:
        if run_id is None:
            run = await ledger.latest_run(conn, schema=ledger_schema)
        else:
            run = await ledger.find_run(conn, run_id, ledger_schema)
        live = await ledger.run_is_live(conn, run.run_id)
        tenant_ids = await ledger.run_tenant_ids(conn, run.run_id, ledger_schema)
        counts = []
        for table, (schema, name, column) in _tables_of(run).items():
            n = await _count(conn, schema, name, column, tenant_ids, run.settings.get("id_kind"))
            counts.append(TableCount(table, f"{schema}.{name}", int(run.counts.get(table, 0)), n))
    finally:
        await conn.close()
    sd = Path(state_dir) if state_dir is not None else default_state_dir()
    pool = run_dir(sd, run.run_id)
    return RunStatusReport(
        target, run, live, tuple(counts), pool if (pool / MANIFEST_FILE).is_file() else None
    )
