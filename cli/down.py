"""``provision down``: a thin CLI over ``teardown`` (``provision runs --prune`` uses ``forget_history``).

Exit codes: 0 done or nothing to do; 2 bad options; 4 remote target refused; 5 database
unreachable; 6 schema problem (no tenants table, unorderable cycle); 7 unknown run or no
ledger; 9 teardown incomplete (cross-tenant references, residue, a failed delete);
10 another process works on the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from agentic_loadkit.provisioning.down.defaults import DEFAULT_BATCH_TENANTS, DEFAULT_JOBS
from agentic_loadkit.provisioning.errors import InputError, TeardownIncomplete
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from .options import (
    allow_remote_option,
    database_url_option,
    dry_run_option,
    json_option,
    quiet_option,
    run_id_argument,
    schema_map_option,
)
from .root import app, err_console, out_console, run_async, state

if TYPE_CHECKING:  # the command imports the teardown stack when it runs, so that --help stays fast
    from agentic_loadkit.provisioning.api import DownPlan, DownResult
    from agentic_loadkit.provisioning.progress import ProgressEvent

__all__ = ["down"]


class _Renderer:
    """Progress per table: a live bar on a terminal, one line per table otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.live = enabled and err_console.is_terminal
        self.progress: Progress | None = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Renderer:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description:<24}"),
                BarColumn(),
                TextColumn("{task.completed:>12,.0f} rows"),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        if not self.enabled or event.kind == "warning":  # warnings go in the summary
            return
        if event.kind == "info":
            err_console.print(event.message, markup=False)
        elif self.progress is not None:
            if event.kind == "table_start":
                self.tasks[event.table] = self.progress.add_task(event.table, total=None)
            elif event.kind == "rows" and event.table in self.tasks:
                self.progress.advance(self.tasks[event.table], event.count)  # type: ignore[arg-type]
            elif event.kind == "table_done" and event.table in self.tasks:
                self.progress.update(self.tasks[event.table], total=event.count, completed=event.count)  # type: ignore[arg-type]
        elif event.kind == "table_done":
            err_console.print(f"  {event.table}: {event.count:,} rows deleted", markup=False)


def _print_result(result: DownResult) -> None:
    for run in result.runs:
        if not run.removed:
            out_console.print(
                f"nothing to do: run {run.run_id} is already removed"
                + (" (history forgotten)" if run.forgotten else "")
                + ".",
                markup=False,
            )
            continue
        table = Table(title=f"run {run.run_id} removed (was {run.previous_status})", title_justify="left")
        table.add_column("table")
        table.add_column("rows deleted", justify="right")
        for name, rows in run.rows.items():
            table.add_row(Text(name), f"{rows:,}")
        table.add_row("total", f"{run.total_rows:,}", style="bold")
        out_console.print(table)
        rate = f" ({run.total_rows / run.seconds:,.0f} rows/s)" if run.seconds > 0 and run.total_rows else ""
        extras = []
        if run.credentials_removed:
            extras.append("credentials deleted")
        if run.forgotten:
            extras.append("history forgotten")
        out_console.print(f"{run.seconds:.2f} s{rate}" + (f"; {', '.join(extras)}" if extras else ""), markup=False)
    for w in result.warnings:
        err_console.print(f"warning: {w}", markup=False)


def _print_plan(plan: DownPlan) -> None:
    out_console.print(f"dry run on {plan.target}: nothing will be deleted", markup=False)
    for run in plan.runs:
        head = f"run {run.run_id} ({run.status}, {run.tenants} tenants)"
        if run.nothing_to_do:
            out_console.print(f"{head}: already removed, nothing to do", markup=False)
            continue
        table = Table(title=f"{head}: would delete {run.total_rows:,} rows", title_justify="left")
        table.add_column("table (delete order)")
        table.add_column("rows", justify="right")
        table.add_column("found by")
        for t in run.tables:
            found = t.paths[0] if t.paths else ""
            if len(t.paths) > 1:
                found += f" (+{len(t.paths) - 1} more {'path' if len(t.paths) == 2 else 'paths'})"
            if t.by_tenant_column:
                found += "  [tenant column, no foreign key]"
            if t.conflicts:
                found += f"  [{t.conflicts} cross-tenant rows]"
            table.add_row(Text(t.table), f"{t.rows:,}", Text(found))
        out_console.print(table)
    if plan.tenant_column_tables:
        out_console.print(
            "tables found by their tenant column (no foreign key): " + ", ".join(plan.tenant_column_tables),
            markup=False,
        )
    for w in plan.warnings:
        err_console.print(f"warning: {w}", markup=False)


def _report(outcome: DownPlan | DownResult, *, quiet: bool, as_json: bool) -> None:
    """The summary (or the plan) on stdout; a plan that cross-tenant rows block exits 9."""
    from agentic_loadkit.provisioning.api import DownPlan

    if as_json:
        out_console.print_json(json.dumps(outcome.to_dict()))
    elif not quiet:
        if isinstance(outcome, DownPlan):
            _print_plan(outcome)
        else:
            _print_result(outcome)
    if isinstance(outcome, DownPlan):
        blocked = [(r.run_id, t) for r in outcome.runs for t in r.tables if t.conflicts]
        if blocked:
            rid, t = blocked[0]
            err_console.print(
                f"error: run {rid} cannot be removed: {t.conflicts} rows of table {t.table} belong to "
                "tenants outside the run but reference its rows.",
                markup=False,
            )
            raise typer.Exit(TeardownIncomplete.exit_code)


@app.command("down")
def down(
    run_id: str | None = run_id_argument("The run to remove (default: the newest run in the ledger)."),
    all_runs: bool = typer.Option(False, "--all", help="Remove every run the ledger knows."),
    dry_run: bool = dry_run_option("Print, per table, how many rows would go; delete nothing."),
    forget: bool = typer.Option(False, "--forget", help="Also delete the run's ledger history after removal."),
    as_json: bool = json_option("summary"),
    quiet: bool = quiet_option(),
    database_url: str | None = database_url_option(),
    allow_remote: bool = allow_remote_option(),
    schema_map: Path | None = schema_map_option("TOML schema map (default: the map the run was made with)."),
    batch_tenants: int = typer.Option(
        DEFAULT_BATCH_TENANTS, "--batch-tenants", min=1, help="Tenants per delete transaction."
    ),
    jobs: int = typer.Option(
        DEFAULT_JOBS, "--jobs", min=1, max=16, help="Connections deleting batches side by side."
    ),
) -> None:
    """Remove a run's tenants and every row that belongs to them (by the ledger, never by name)."""
    from agentic_loadkit.provisioning.api import DownSettings, load_schema_map, plan_down, provision_down

    async def go() -> DownPlan | DownResult:
        if run_id is not None and all_runs:
            raise InputError("Give a run id or --all, not both.")
        settings = DownSettings(
            run_id=run_id, all_runs=all_runs, database_url=database_url, state_dir=state().state_dir,
            allow_remote=allow_remote, forget=forget,
            schema_map=load_schema_map(schema_map) if schema_map is not None else None,
            batch_tenants=batch_tenants, jobs=jobs,
        )
        if dry_run:
            return await plan_down(settings)
        with _Renderer(enabled=not (quiet or as_json)) as render:
            return await provision_down(settings, render)

    _report(run_async(go()), quiet=quiet, as_json=as_json)
