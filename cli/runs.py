"""``provision runs``, ``status``, ``credentials``: what the target's ledger and the state
directory know of the runs, thin over ``list_runs``, ``run_status`` and ``export_credentials``.

Exit codes: 0 done; 2 bad options; 4 remote target refused; 5 database unreachable;
7 unknown run; 11 unsafe state directory; 12 credentials problem.  No password is ever
printed, except by ``credentials`` when asked to export to stdout.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from .options import allow_remote_option, database_url_option, json_option, run_id_argument
from .root import app, err_console, out_console, print_json, run_async, state

if TYPE_CHECKING:  # the commands import their stacks when they run, so that --help stays fast
    from agentic_loadkit.provisioning.api import RunList, RunStatusReport

__all__ = ["credentials", "runs", "status"]


def _print_runs(listing: RunList) -> None:
    if not listing.runs:
        out_console.print(f"no runs in {listing.target}", markup=False)
        return
    table = Table(title=f"runs in {listing.target}", title_justify="left")
    for col in ("run", "status", "scale", "seed", "tenants", "rows", "label", "created", "fingerprint"):
        table.add_column(col, justify="right" if col in ("seed", "tenants", "rows") else "left")
    for r in listing.runs:
        table.add_row(
            r.run_id,
            r.status,
            r.scale,
            str(r.seed),
            f"{r.tenant_count:,}",
            f"{sum(r.counts.values()):,}",
            r.label or "",
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            (r.fingerprint or "")[:12],
        )
    out_console.print(table)


@app.command("runs")
def runs(
    as_json: bool = json_option("runs"),
    prune: bool = typer.Option(False, "--prune", help="Delete the history of removed runs first."),
    database_url: str | None = database_url_option(),
    allow_remote: bool = allow_remote_option(),
) -> None:
    """List the runs the target's ledger knows, newest first."""
    from agentic_loadkit.provisioning.api import DownSettings, forget_history, list_runs

    async def go() -> tuple[list[str], RunList]:
        pruned: list[str] = []
        if prune:
            pruned = await forget_history(
                DownSettings(
                    all_runs=True,
                    database_url=database_url,
                    state_dir=state().state_dir,
                    allow_remote=allow_remote,
                )
            )
        return pruned, await list_runs(
            database_url=database_url, state_dir=state().state_dir, allow_remote=allow_remote
        )

    pruned, listing = run_async(go())
    if as_json:
        print_json({**listing.as_dict(), "pruned": pruned})
        return
    if pruned:
        out_console.print(f"forgot {len(pruned)} removed run(s): {', '.join(pruned)}", markup=False)
    _print_runs(listing)


def _print_status(report: RunStatusReport) -> None:
    from agentic_loadkit.provisioning.api import run_summary

    s = run_summary(report.run)
    out_console.print(
        f"run {s['run_id']} ({s['status']}{', in progress' if report.live else ''}) in {report.target}",
        markup=False,
    )
    out_console.print(
        f"scale {s['scale']}, seed {s['seed']}, label {s['label'] or '-'}, created {s['created_at']}, "
        f"toolkit {s['toolkit_version']}",
        markup=False,
    )
    out_console.print(f"fingerprint {s['fingerprint'] or '-'}", markup=False)
    if s["error"]:
        out_console.print(f"error: {s['error']}", markup=False)
    table = Table()
    for col in ("table", "ledger rows", "live rows"):
        table.add_column(col, justify="left" if col == "table" else "right")
    for t in report.tables:
        table.add_row(t.name, f"{t.expected:,}", "table missing" if t.live is None else f"{t.live:,}")
    out_console.print(table)
    out_console.print(f"credentials {report.credentials_dir or 'none in this state directory'}", markup=False)


@app.command("status")
def status(
    run_id: str | None = run_id_argument("The run (default: the newest)."),
    as_json: bool = json_option("status"),
    database_url: str | None = database_url_option(),
    allow_remote: bool = allow_remote_option(),
) -> None:
    """Show one run with the live row count of every table for its tenants."""
    from agentic_loadkit.provisioning.api import run_status

    report = run_async(
        run_status(run_id, database_url=database_url, state_dir=state().state_dir, allow_remote=allow_remote)
    )
    if as_json:
        print_json(report.as_dict())
    else:
        _print_status(report)


@app.command("credentials")
def credentials(
    run_id: str | None = run_id_argument("The run (default: the newest ready run in the state directory)."),
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    output: Path | None = typer.Option(
        None, "--output", help="Write to this file (mode 0600) instead of stdout."
    ),
) -> None:
    """Export a run's credentials pool (logins for the load test) as CSV or JSON."""
    from agentic_loadkit.provisioning.api import default_state_dir, export_credentials

    async def go() -> tuple[str, str | Path]:
        return export_credentials(state().state_dir or default_state_dir(), run_id, format=fmt, output=output)

    run, written = run_async(go())
    if isinstance(written, Path):
        err_console.print(f"wrote the credentials of run {run} to {written}", markup=False)
    else:
        sys.stdout.write(written)
        sys.stdout.flush()
