"""Which runs a ``down`` works on, the schema map each was made with, and their foreign-key graphs."""

from __future__ import annotations

import asyncpg

from ..errors import RunNotFound
from ..progress import ProgressCallback, ProgressEvent
from ..runs.ledger import RunRecord, find_run, latest_run, ledger_exists, list_runs
from ..schema.fkgraph import ForeignKeyGraph
from ..schema.fkreflect import reflect_graph
from ..schema.schemamap import SchemaMap, parse_schema_map
from .failures import refused
from .model import DownSettings

__all__ = ["RunGraphs", "run_schema_map", "select_runs"]


async def select_runs(conn: asyncpg.Connection, settings: DownSettings) -> list[RunRecord]:
    """The run named, every run (oldest first), or the newest run."""
    try:
        return await _select_runs_unguarded(conn, settings)
    except asyncpg.PostgresError as exc:  # a role that may not even read the ledger
        raise refused(exc, "provision down") from exc


async def _select_runs_unguarded(conn: asyncpg.Connection, settings: DownSettings) -> list[RunRecord]:
    schema = settings.ledger_schema
    if settings.run_id is not None:
        return [await find_run(conn, settings.run_id, schema)]
    if not await ledger_exists(conn, schema):
        raise RunNotFound("This database has no run ledger, so it has no run to remove.")
    if settings.all_runs:
        return list(reversed(await list_runs(conn, schema=schema)))  # oldest first
    return [await latest_run(conn, schema=schema)]


def run_schema_map(settings: DownSettings, run: RunRecord) -> SchemaMap:
    """The map given in ``settings``, else the one stored with the run, else the contract's names."""
    if settings.schema_map is not None:
        return settings.schema_map
    stored = run.settings.get("schema_map")
    if isinstance(stored, dict):
        return parse_schema_map(stored, source=f"stored with run {run.run_id}")
    return SchemaMap()


class RunGraphs:
    """One reflection per distinct (schema, tenants table, tenant column) within a command."""

    def __init__(self, conn: asyncpg.Connection, settings: DownSettings, progress: ProgressCallback) -> None:
        self.conn, self.settings, self.progress = conn, settings, progress
        self.cache: dict[tuple[str, str, str], ForeignKeyGraph] = {}

    async def get(self, run: RunRecord) -> ForeignKeyGraph:
        m = run_schema_map(self.settings, run)
        key = (m.schema, m.table_name("tenants"), m.tenant_column)
        if key not in self.cache:
            self.progress(ProgressEvent("phase", name="reflect"))
            self.cache[key] = await reflect_graph(
                self.conn,
                tenants_schema=key[0],
                tenants_table=key[1],
                tenant_column=key[2],
                exclude_schemas=(self.settings.ledger_schema,),
            )
        return self.cache[key]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(w for g in self.cache.values() for w in g.warnings))

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for g in self.cache.values() for n in g.notes))
