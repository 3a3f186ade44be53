"""What ``provision down`` takes (``DownSettings``) and gives back (``DownPlan``, ``DownResult``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..runs.ledger import DEFAULT_LEDGER_SCHEMA
from ..schema.schemamap import SchemaMap
from .defaults import DEFAULT_BATCH_TENANTS, DEFAULT_JOBS

__all__ = ["DownPlan", "DownResult", "DownSettings", "RunPlan", "RunTeardown", "TablePlan"]


@dataclass(frozen=True)
class DownSettings:
    """What to tear down and where.  ``run_id=None`` and ``all_runs=False``: the newest run."""

    run_id: str | None = None
    all_runs: bool = False
    database_url: str | None = None
    state_dir: Path | None = None
    allow_remote: bool = False
    forget: bool = False
    # None: the map the run was made with (stored in the ledger), else the contract's names
    schema_map: SchemaMap | None = None
    ledger_schema: str = DEFAULT_LEDGER_SCHEMA
    batch_tenants: int = DEFAULT_BATCH_TENANTS
    jobs: int = DEFAULT_JOBS


@dataclass(frozen=True)
class TablePlan:
    table: str
    rows: int
    paths: tuple[str, ...]
    by_tenant_column: bool = False
    conflicts: int = 0


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    status: str
    live: bool
    tenants: int
    tables: tuple[TablePlan, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return self.status == "removed"

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)


@dataclass(frozen=True)
class DownPlan:
    target: str
    runs: tuple[RunPlan, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    tenant_column_tables: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        runs = [{**asdict(r), "total_rows": r.total_rows, "nothing_to_do": r.nothing_to_do} for r in self.runs]
        return {
            "dry_run": True,
            "target": self.target,
            "runs": runs,
            "tenant_column_tables": list(self.tenant_column_tables),
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class RunTeardown:
    run_id: str
    previous_status: str
    removed: bool  # False: the run was already removed, nothing to do
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted, in delete order
    seconds: float = 0.0
    forgotten: bool = False
    credentials_removed: bool = False

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


@dataclass(frozen=True)
class DownResult:
    target: str
    runs: tuple[RunTeardown, ...]
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def nothing_to_do(self) -> bool:
        return not any(r.removed for r in self.runs)

    def to_dict(self) -> dict[str, Any]:
        runs = [{**asdict(r), "seconds": round(r.seconds, 3), "total_rows": r.total_rows} for r in self.runs]
        return {
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "nothing_to_do": self.nothing_to_do,
            "runs": runs,
            "warnings": list(self.warnings),
        }
