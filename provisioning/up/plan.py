"""``provision up --dry-run``: what a run would write, and roughly how much disk it takes; writes nothing.

Everything at once: per table the columns it would write and from which concept (or
pinned by the schema map, or filled by type), the concepts it skips, and every problem
the binding found — collected, not stopped at the first — so one run tells a platform
engineer all that stands between their schema and a load.

The size estimate comes from average row widths measured on a sample of the rows the
run would generate (the first few hundred of each table, shaped for the live columns
when the schema could be read), turned into heap pages the way PostgreSQL lays them
out (tuple header, alignment, line pointers, 8 KB pages), plus an estimate of the
B-tree indexes (one entry per row per index).  It is an estimate: TOAST compression of
long prompts and fill factors make the real size differ by some percent.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DatabaseUnreachable, ProvisionError
from ..generate.binding import bind_tables, dataset_options
from ..generate.dataset import TABLE_COLUMNS, Dataset, GenerationSpec, IdSpace, IntegerIds, UuidIds
from ..generate.passwords import estimate_hash_seconds
from ..schema.reflect import FilledColumn, TablePlan, reflect_tables
from ..target.resolve import connect, resolve_database
from .settings import PreparedRun, UpSettings, prepare_run

__all__ = ["PlanProblem", "PlannedTable", "UpPlan", "estimate_heap_bytes", "plan_up", "value_width"]

PAGE = 8192
PAGE_USABLE = PAGE - 24
TUPLE_HEADER = 24
LINE_POINTER = 4
INDEX_ENTRY_OVERHEAD = 16  # index tuple header + line pointer + alignment, roughly
SAMPLE_ROWS = 400
JSONB_OVERHEAD = 1.25
_UUID_LEN = 36


@dataclass(frozen=True)
class PlannedTable:
    table: str
    name: str
    rows: int
    heap_bytes: int
    total_bytes: int  # heap + indexes
    flavour: str = ""  # "guide" | "v1": whose values the shared columns get ("" when not checked)
    flavour_reason: str = ""
    written: tuple[dict[str, str], ...] = ()  # column, source, concept, spelling, field, note
    skipped: tuple[dict[str, str], ...] = ()  # concept, looked_for, reason


@dataclass(frozen=True)
class PlanProblem:
    """One problem the binding found: its sentence, the exit code ``up`` would give, where."""

    message: str
    exit_code: int
    table: str = ""
    column: str = ""


@dataclass(frozen=True)
class UpPlan:
    target: str
    schema_checked: bool
    scale: str
    seed: int
    seed_given: bool
    counts: dict[str, int]
    tables: tuple[PlannedTable, ...]
    id_kind: str
    hash_count: int
    bcrypt_cost: int
    hash_seconds: float
    note: str = ""
    filled_columns: tuple[FilledColumn, ...] = ()
    dropped_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    problems: tuple[PlanProblem, ...] = ()

    @property
    def exit_code(self) -> int:
        """What ``up`` would exit with: 0 when nothing stands in the way, else the first problem's code."""
        return self.problems[0].exit_code if self.problems else 0

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def heap_bytes(self) -> int:
        return sum(t.heap_bytes for t in self.tables)

    @property
    def total_bytes(self) -> int:
        return sum(t.total_bytes for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(
            dry_run=True,
            total_rows=self.total_rows,
            heap_bytes=self.heap_bytes,
            total_bytes=self.total_bytes,
            hash_seconds=round(self.hash_seconds, 1),
            exit_code=self.exit_code,
        )
        return d


def value_width(value: Any) -> int:
    """Bytes a value takes in a heap tuple (PostgreSQL's on-disk widths, before alignment)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        return 1
    if isinstance(value, int | float | dt.datetime):
        return 8
    if isinstance(value, str):
        if len(value) == _UUID_LEN and value.count("-") == 4:
            return 16  # a UUID key given as text
        n = len(value.encode())
        if value[:1] in ("{", "["):
            n = int(n * JSONB_OVERHEAD)  # JSON text lands in jsonb, whose binary form is larger
        return n + (1 if n < 127 else 4)
    if isinstance(value, dt.date):
        return 4
    return 16


def estimate_heap_bytes(sample: Sequence[Sequence[Any]], rows: int) -> int:
    """Heap size of ``rows`` rows shaped like ``sample``: aligned tuples plus line pointers in 8 KB pages."""
    if rows <= 0 or not sample:
        return 0
    width = sum(sum(value_width(v) for v in row) for row in sample) / len(sample)
    columns = len(sample[0])
    header = TUPLE_HEADER + (math.ceil(columns / 8) if any(v is None for r in sample for v in r) else 0)
    tuple_bytes = 8 * math.ceil((header + width) / 8) + LINE_POINTER
    pages = math.ceil(rows * tuple_bytes / PAGE_USABLE)
    return pages * PAGE


def _index_bytes(rows: int, indexes: int, key_bytes: int) -> int:
    return int(rows * indexes * (key_bytes + INDEX_ENTRY_OVERHEAD) / 0.9)


def _sample(dataset: Dataset, ids: IdSpace, table: str, plan: TablePlan | None) -> list[Any]:
    stream = dataset.stream(table)
    if stream.count == 0:
        return []
    batch = next(iter(stream.batches(ids, min(SAMPLE_ROWS, stream.count), stop=stream.count)))
    if plan is not None and plan.transform is not None:
        return [plan.transform(r) for r in batch]
    return list(batch)


_DEFAULT_INDEXES = {"tenants": 3, "users": 4, "agents": 4, "workflows": 4, "collections": 3, "mcp_servers": 3}


def _problem(exc: ProvisionError) -> PlanProblem:
    return PlanProblem(exc.message, exc.exit_code, str(getattr(exc, "table", "") or ""),
                       str(getattr(exc, "column", "") or ""))


def _provenance(plan: TablePlan | None) -> tuple[tuple[dict[str, str], ...], tuple[dict[str, str], ...]]:
    if plan is None:
        return (), ()
    written = tuple({"column": b.column, "source": b.source, "concept": b.concept, "spelling": b.spelling,
                     "field": b.field, "note": b.note} for b in plan.bound)
    skipped = tuple({"concept": s.concept, "looked_for": s.looked_for, "reason": s.reason} for s in plan.skipped)
    return written, skipped


async def _read_schema(
    settings: UpSettings, prep: PreparedRun
) -> tuple[str, str, dict[str, TablePlan] | None, list[ProvisionError]]:
    """The target's name, a note, and the bound tables with their problems (None: schema not read).

    An embedded server that is not running is not started for a dry run: its schema is not checked.
    """
    embedded = not settings.database_url and not os.environ.get("DATABASE_URL")
    try:
        db = resolve_database(
            settings.database_url,
            state_dir=prep.state_dir,
            allow_remote=settings.allow_remote,
            start_embedded=False,
        )
    except DatabaseUnreachable:
        if not embedded:
            raise
        return f"the embedded server under {prep.state_dir} (not running)", "schema not checked", None, []
    conn = await connect(db)  # a clear sentence when unreachable
    await conn.close()
    live = await reflect_tables(db.target, prep.schema_map, strict=False)
    plans, problems = bind_tables(live, prep.schema_map)
    return db.masked, "", plans, problems


def _planned_tables(
    prep: PreparedRun, plans: dict[str, TablePlan] | None, id_kind: str
) -> list[PlannedTable]:
    """Per table: rows, estimated heap and index bytes, and what is written from where."""
    spec = GenerationSpec(
        seed=prep.seed,
        namespace="rdryrun0",
        counts=prep.counts,
        skew=prep.skew,
        password_slots=prep.password_slots,
    )
    options = dataset_options(plans) if plans and "users" in plans else {}
    dataset = Dataset(spec, ["$2b$12$" + "x" * 53] * prep.password_slots, **options)
    ids: IdSpace = IntegerIds({t: 1 for t in TABLE_COLUMNS}) if id_kind == "integer" else UuidIds("rdryrun0")
    counts = prep.counts.as_dict()
    key_bytes = 16 if id_kind == "uuid" else 8
    tables = []
    for table in TABLE_COLUMNS:
        plan = plans.get(table) if plans else None
        heap = estimate_heap_bytes(_sample(dataset, ids, table, plan), counts[table])
        written, skipped = _provenance(plan)
        indexes = plan.index_count if plan else _DEFAULT_INDEXES[table]
        smap = prep.schema_map
        name = f"{plan.schema}.{plan.name}" if plan else f"{smap.schema}.{smap.table_name(table)}"
        tables.append(
            PlannedTable(
                table, name, counts[table], heap, heap + _index_bytes(counts[table], indexes, key_bytes + 8),
                plan.flavour if plan else "", plan.flavour_reason if plan else "", written, skipped,
            )
        )
    return tables


async def plan_up(settings: UpSettings) -> UpPlan:
    """Validate the inputs, read (never write) the target's schema when reachable, and size the run.

    Schema problems do not raise: they are all in ``UpPlan.problems`` (``exit_code`` says what
    ``up`` would exit with), beside everything that could be planned.
    """
    prep = prepare_run(settings)
    target, note, plans, problems = await _read_schema(settings, prep)
    id_kind = plans["tenants"].id_kind if plans and "tenants" in plans else "uuid"
    return UpPlan(
        target=target,
        schema_checked=plans is not None,
        scale=prep.scale,
        seed=prep.seed,
        seed_given=settings.seed is not None,
        counts=prep.counts.as_dict(),
        tables=tuple(_planned_tables(prep, plans, id_kind)),
        id_kind=id_kind,
        hash_count=prep.hash_count,
        bcrypt_cost=settings.bcrypt_cost,
        hash_seconds=estimate_hash_seconds(prep.hash_count, settings.bcrypt_cost),
        note=note,
        filled_columns=tuple(f for p in (plans or {}).values() for f in p.filled),
        dropped_columns={t: p.dropped for t, p in (plans or {}).items() if p.dropped},
        problems=tuple(_problem(p) for p in problems),
    )
