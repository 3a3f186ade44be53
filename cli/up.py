"""``provision up``: a thin CLI over ``plan_up`` (``--dry-run``) and ``provision_up``.

Exit codes: 0 done; 2 bad input (scale, counts, options, profile, schema map); 4 remote
target refused; 5 database unreachable; 6 schema mismatch (a table or column missing);
7 unknown run; 8 provisioning failed (the run was rolled back and marked failed);
10 another process works on the run; 11 unsafe state directory; 12 credentials problem;
15 the database refused what ``up`` needs before anything was written (a read-only user, a
lock not granted within the role's lock_timeout); 130 interrupted (rolled back).

Progress bars and messages go to stderr; the summary (or ``--json``) to stdout.  No
password is ever printed.  The run's ledger and credentials are read by ``runs.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate.passwords import DEFAULT_PASSWORD_COUNT
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .options import (
    allow_remote_option,
    bcrypt_cost_option,
    database_url_option,
    dry_run_option,
    json_option,
    overrides_option,
    quiet_option,
    scale_option,
    schema_map_option,
    seed_option,
)
from .root import app, err_console, out_console, print_json, run_async, state

if TYPE_CHECKING:  # the command imports its stack when it runs, so that --help stays fast
    from agentic_loadkit.provisioning.api import PlannedTable, UpPlan, UpResult
    from agentic_loadkit.provisioning.progress import ProgressEvent

__all__ = ["up"]

_MB = 1e6


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:>9,.0f} rows/s" if speed else " " * 16, style="progress.data.speed")


class _UpRenderer:
    """Rich bars per table (rows, rows/s, ETA) on stderr; silent with --quiet or --json."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.warnings: list[str] = []

    def __enter__(self) -> _UpRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _bars(self) -> Progress:
        """Started on the first event, so that an early error prints nothing but itself."""
        if self.progress is None:
            self.progress = Progress(
                TextColumn("{task.description:<12}"),
                BarColumn(),
                MofNCompleteColumn(),
                _RowsPerSecond(),
                TimeRemainingColumn(),
                console=err_console,
            )
            self.progress.start()
        return self.progress

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind == "warning":
            self.warnings.append(event.message)
        if not self.enabled or event.kind == "phase" or (event.kind == "info" and event.name in ("analyze", "ready")):
            return  # per-table ANALYZE lines are noise; "ready" is the summary table's title
        if not err_console.is_terminal:  # logs (CI): one line per message and per finished table
            if event.kind in ("info", "warning"):
                prefix = "warning: " if event.kind == "warning" else ""
                err_console.print(prefix + event.message, markup=False)
            elif event.kind == "table_done" and event.table != "passwords":
                seconds = float(event.data.get("seconds", 0.0))
                err_console.print(f"  {event.table}: {event.count:,} rows in {seconds:.2f} s", markup=False)
            return
        bars = self._bars()
        if event.kind == "warning":
            bars.console.print(f"warning: {event.message}", markup=False)
        elif event.kind == "info":
            bars.console.print(event.message, markup=False)
        elif event.kind == "table_start":
            self.tasks[event.table] = bars.add_task(event.table, total=event.total)
        elif event.kind == "rows" and event.table in self.tasks:
            bars.advance(self.tasks[event.table], event.count)
        elif event.kind == "table_done" and event.table in self.tasks:
            bars.update(self.tasks[event.table], completed=event.count, total=event.count)


def _mb(n: int) -> str:
    return f"{n / _MB:,.1f}"


def _print_result(result: UpResult) -> None:
    table = Table(title=f"run {result.run_id} ready", title_justify="left")
    for col, justify in (
        ("table", "left"),
        ("rows", "right"),
        ("heap MB", "right"),
        ("total MB", "right"),
        ("seconds", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in result.tables:
        table.add_row(t.name, f"{t.rows:,}", _mb(t.heap_bytes), _mb(t.total_bytes), f"{t.seconds:.2f}")
    table.add_row(
        "all",
        f"{result.rows:,}",
        _mb(result.heap_bytes),
        _mb(sum(t.total_bytes for t in result.tables)),
        f"{result.elapsed:.2f}",
        style="bold",
    )
    out_console.print(table)
    phases = " · ".join(f"{k} {v:.2f} s" for k, v in result.phases.items() if k != "total")
    rate = result.rows / result.elapsed if result.elapsed else 0.0
    lines = [
        f"phases: {phases} (bcrypt hashing runs on threads alongside the other phases)",
        f"total {result.elapsed:.2f} s, {rate:,.0f} rows/s, "
        f"{result.heap_bytes / _MB / result.elapsed:,.1f} heap MB/s, {result.streams} stream(s), "
        f"foreign keys checked {result.foreign_key_checks}, peak RSS {result.peak_rss_mb:.0f} MB",
        f"scale {result.scale}, seed {result.seed}, {result.id_kind} keys, target {result.target}",
        f"fingerprint {result.fingerprint}",
        f"credentials {result.credentials_path} ({result.active_users:,} active users, "
        f"{result.password_count:,} distinct passwords, bcrypt cost {result.bcrypt_cost})",
    ]
    for f in result.filled_columns:
        lines.append(f"filled NOT NULL column {f.table}.{f.column} ({f.type}) with {f.value}")
    for line in lines:
        out_console.print(line, markup=False)


def _print_plan(plan: UpPlan) -> None:
    table = Table(title="dry run: nothing written", title_justify="left")
    for col, justify in (
        ("table", "left"),
        ("rows", "right"),
        ("est. heap MB", "right"),
        ("est. total MB", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for t in plan.tables:
        table.add_row(t.name, f"{t.rows:,}", _mb(t.heap_bytes), _mb(t.total_bytes))
    table.add_row("all", f"{plan.total_rows:,}", _mb(plan.heap_bytes), _mb(plan.total_bytes), style="bold")
    out_console.print(table)
    seed = f"seed {plan.seed}" if plan.seed_given else f"seed {plan.seed} (random; pass --seed to fix it)"
    out_console.print(f"target {plan.target}{' (' + plan.note + ')' if plan.note else ''}", markup=False)
    out_console.print(f"scale {plan.scale}, {seed}, {plan.id_kind} keys", markup=False)
    out_console.print(
        f"passwords: {plan.hash_count:,} bcrypt hashes at cost {plan.bcrypt_cost}, "
        f"about {plan.hash_seconds:.1f} s",
        markup=False,
    )
    for t in plan.tables:
        _print_table_binding(t)
    if plan.schema_checked and not plan.problems:
        out_console.print("no problems: provision up would run as planned", markup=False)
    if plan.problems:
        out_console.print(f"{len(plan.problems)} problem(s); provision up would stop (exit {plan.exit_code}):",
                          markup=False)
        for k, p in enumerate(plan.problems, start=1):
            out_console.print(f"  {k}. {p.message}", markup=False)


def _print_table_binding(t: PlannedTable) -> None:
    """Per table: the columns written and from which concept, those pinned or filled, the concepts skipped."""
    if not t.flavour:
        return
    out_console.print(f"{t.name}: {t.flavour} values ({t.flavour_reason})", markup=False)
    for w in t.written:
        if w["source"] == "concept":
            via = "" if w["spelling"] == w["column"] else f" as {w['spelling']}"
            out_console.print(f"  write  {w['column']:<24} ← {w['concept']}{via}", markup=False)
        else:
            out_console.print(f"  {w['source']:<6} {w['column']:<24} ({w['note']})", markup=False)
    for k in t.skipped:
        out_console.print(f"  skip   {k['concept']:<24} (looked for {k['looked_for']}; {k['reason']})",
                          markup=False)


def _skew_setting(skew: str | None, uniform: bool) -> str | float | None:
    """``--skew``/``--uniform`` as the one value ``UpSettings.skew`` takes; ``prepare_run`` validates it."""
    from agentic_loadkit.provisioning.api import DEFAULT_SKEW

    if uniform and skew is not None:
        raise InputError("Pass either --skew or --uniform, not both.")
    if uniform:
        return None
    return skew if skew is not None else DEFAULT_SKEW


def _report(outcome: UpResult | UpPlan, *, quiet: bool, as_json: bool) -> None:
    """The summary (or the plan) on stdout; a dry run that found problems exits with its code."""
    from agentic_loadkit.provisioning.api import UpPlan

    if not quiet:
        if as_json:
            print_json(outcome.as_dict())
        elif isinstance(outcome, UpPlan):
            _print_plan(outcome)
        else:
            _print_result(outcome)
    if isinstance(outcome, UpPlan) and outcome.exit_code:
        if quiet or as_json:
            err_console.print(f"error: {outcome.problems[0].message}", markup=False)
        raise typer.Exit(outcome.exit_code)


@app.command("up")
def up(
    scale: str = scale_option(),
    overrides: list[str] = overrides_option(),
    profile: Path | None = typer.Option(None, "--profile", help="A TOML profile of counts."),
    seed: int | None = seed_option(),
    skew: str | None = typer.Option(None, "--skew", help="Tenant-size skew (Zipf exponent, default 1.0)."),
    uniform: bool = typer.Option(False, "--uniform", help="Make every tenant the same size."),
    label: str | None = typer.Option(None, "--label", help="A label stored with the run."),
    schema_map: Path | None = schema_map_option("A TOML map of table/column names."),
    bcrypt_cost: int = bcrypt_cost_option(),
    password_count: int = typer.Option(
        DEFAULT_PASSWORD_COUNT, "--password-count", help="Distinct passwords shared by the users."
    ),
    unique_passwords: bool = typer.Option(False, "--unique-passwords", help="One password per user (slow)."),
    single_transaction: bool = typer.Option(
        False, "--single-transaction", help="Load everything in one transaction on one connection (slower)."
    ),
    streams: int | None = typer.Option(None, "--streams", help="Parallel COPY streams.", hidden=True),
    foreign_key_checks: str = typer.Option(
        "auto",
        "--foreign-key-checks",
        help="auto | per-row | after-load: check foreign keys once, set-based, after the load "
        "(needs a role that may set session_replication_role; auto falls back to per row).",
    ),
    dry_run: bool = dry_run_option("Print the plan and write nothing."),
    as_json: bool = json_option("summary"),
    quiet: bool = quiet_option(),
    database_url: str | None = database_url_option(),
    allow_remote: bool = allow_remote_option(),
) -> None:
    """Provision a run: tenants, users, agents, workflows, collections, MCP servers, and logins."""
    from agentic_loadkit.provisioning.api import DEFAULT_STREAMS, UpSettings, plan_up, provision_up

    renderer = _UpRenderer(enabled=not (quiet or as_json or dry_run))
    copy_streams = 1 if single_transaction else streams if streams is not None else DEFAULT_STREAMS

    async def go() -> UpResult | UpPlan:
        settings = UpSettings(
            scale=scale, overrides=tuple(overrides), profile=profile, seed=seed,
            skew=_skew_setting(skew, uniform), label=label, schema_map=schema_map, bcrypt_cost=bcrypt_cost,
            password_count=password_count, unique_passwords=unique_passwords, database_url=database_url,
            allow_remote=allow_remote, state_dir=state().state_dir,
            streams=copy_streams, foreign_key_checks=foreign_key_checks,
        )
        if dry_run:
            return await plan_up(settings)
        with renderer:
            return await provision_up(settings, renderer)

    _report(run_async(go()), quiet=quiet, as_json=as_json)
