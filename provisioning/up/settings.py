"""What ``provision up`` is asked to do: its settings, the validated inputs, and its result.

``prepare_run`` validates every input (scale, counts, seed, skew, password options,
schema map) before any database is touched, so that bad input is one sentence and
nothing written.  ``UpResult.as_dict`` is the ``--json`` summary: no password in it,
the target masked.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..generate.dataset import DEFAULT_BATCH_SIZE
from ..generate.passwords import DEFAULT_BCRYPT_COST, DEFAULT_PASSWORD_COUNT, validate_password_options
from ..generate.scales import DEFAULT_SKEW, ScaleCounts, parse_skew, resolve_counts
from ..runs import ledger
from ..schema.reflect import FilledColumn
from ..schema.schemamap import SchemaMap, load_schema_map
from ..target.statedir import default_state_dir
from .fkcheck import FK_CHECK_MODES
from .load import MIN_SPLIT_ROWS, TableLoad

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_STREAMS",
    "MAX_SEED",
    "PreparedRun",
    "UpResult",
    "UpSettings",
    "prepare_run",
]

DEFAULT_STREAMS = 2
MAX_SEED = 2**63 - 1
_LABEL_MAX = 200


@dataclass(frozen=True)
class UpSettings:
    """Everything ``provision up`` (and its ``--dry-run``) needs; the CLI builds one from its options."""

    scale: str = "small"
    overrides: tuple[str, ...] = ()
    profile: Path | None = None
    seed: int | None = None  # None: a random seed, reported in the result
    skew: float | str | None = DEFAULT_SKEW  # None or 'uniform': uniform tenant sizes (parse_skew)
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
    foreign_key_checks: str = "auto"  # "auto" | "per-row" | "after-load" (see fkcheck)


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
    foreign_key_checks: str = "per-row"  # how the load checked foreign keys: "per-row" or "after-load"

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
    skew = parse_skew(settings.skew)  # the one check of the skew, for every caller
    validate_password_options(settings.password_count, settings.bcrypt_cost)
    _check_int("number of streams", settings.streams, 1, 16)
    _check_int("batch size", settings.batch_size, 1, 1_000_000)
    _check_int("split threshold", settings.split_rows, 1, 1 << 40)
    if settings.foreign_key_checks not in FK_CHECK_MODES:
        raise InputError(
            f"Foreign-key checks must be one of {', '.join(FK_CHECK_MODES)}, not {settings.foreign_key_checks!r}."
        )
    if settings.label is not None and (len(settings.label) > _LABEL_MAX or not settings.label.isprintable()):
        raise InputError(f"The label must be printable text of at most {_LABEL_MAX} characters.")
    if settings.unique_passwords and counts.users > 65_536:
        raise InputError(f"--unique-passwords supports at most 65,536 users, not {counts.users:,}.")
    schema_map = load_schema_map(settings.schema_map)
    slots = settings.password_count
    hash_count = counts.users if settings.unique_passwords else settings.password_count
    state_dir = Path(settings.state_dir) if settings.state_dir is not None else default_state_dir()
    return PreparedRun(scale, counts, seed, skew, schema_map, slots, hash_count, state_dir)
