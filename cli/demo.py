"""``provision demo``: thin CLI over ``demo.run_demo`` — options, a phase display, the summary.

Exit codes: the gate's — 0 every check passed, 3 a check failed (the table says which);
otherwise 2 bad option, 4 remote target refused, 5 database unreachable, 6 schema
problem, 8 provisioning failed, 9 teardown incomplete, 12 credentials pool too small,
13 the platform did not start, 14 the load test neither passed nor breached (Locust
failed or timed out; see its log), 130 interrupted (after the cleanup).

The phase display and messages go to stderr; the gate's table and the summary to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from agentic_loadkit.demo.settings import DEFAULT_TIME_SCALE, DEMO_DATABASE, LOAD_GRACE_SECONDS
from agentic_loadkit.provisioning.generate.passwords import DEFAULT_BCRYPT_COST
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.progress_bar import ProgressBar

from .options import bcrypt_cost_option, database_url_option, overrides_option, scale_option, seed_option
from .root import app, err_console, out_console, run_async, state

if TYPE_CHECKING:  # the command imports the demo stack when it runs, so that --help stays fast
    from agentic_loadkit.demo.settings import DemoResult
    from agentic_loadkit.provisioning.progress import ProgressEvent

__all__ = ["demo"]


class _PhaseBar(ProgressColumn):
    """A bar that follows the clock for a phase of known length (the load), else pulses."""

    def render(self, task: Task) -> ProgressBar:
        total = task.total
        if task.finished:
            return ProgressBar(total=1, completed=1, width=30)
        if total:
            return ProgressBar(total=total, completed=min(task.elapsed or 0.0, total), width=30)
        return ProgressBar(total=None, width=30, pulse=True, animation_time=task.get_time())


class _DemoDisplay:
    """One line per phase: a live spinner and bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.live = err_console.is_terminal
        self.progress: Progress | None = None
        self.task: Any = None
        self.label = ""

    def __enter__(self) -> _DemoDisplay:
        if self.live:
            self.progress = Progress(
                SpinnerColumn(finished_text="[green]✓[/]"), TextColumn("{task.description}"), _PhaseBar(),
                TimeElapsedColumn(), console=err_console,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._finish_task()
        if self.progress is not None:
            self.progress.stop()

    def _finish_task(self) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=self.label, total=1, completed=1)
            self.progress.stop_task(self.task)
        self.task = None

    def _print(self, text: str) -> None:
        (self.progress.console if self.progress is not None else err_console).print(text, markup=False)

    def __call__(self, event: ProgressEvent) -> None:
        data = event.data
        if event.kind == "phase" and data.get("demo"):
            label = f"[{data['step']}/{data['steps']}] {event.name:<8} {event.message}"
            if self.progress is None:
                self._print(label)
                return
            self._finish_task()  # under the finished phase's own label
            self.label = label
            self.task = self.progress.add_task(label, total=data.get("seconds"))
        elif event.kind == "phase":  # a step of up or down
            if self.progress is not None and self.task is not None:
                self.progress.update(self.task, description=f"{self.label} · {event.name}")
        elif event.kind == "info" and data.get("demo"):  # up's and down's own chatter stays quiet
            self._print(event.message)
        elif event.kind == "warning":
            self._print(f"warning: {event.message}")


def _print_result(result: DemoResult) -> None:
    out = out_console
    if result.gate is not None:
        out.print(result.gate.table, markup=False)
    else:
        out.print("(the scenarios wrote no gate verdict to the results JSON; see the Locust log)", markup=False)
    out.print("", markup=False)
    out.print(
        f"run {result.run_id} (scale {result.scale}, seed {result.seed}): {result.rows_made:,} rows made, "
        f"{result.rows_removed:,} rows removed (with those the platform made during the load), "
        f"{result.rows_left} left",
        markup=False,
    )
    missing = "(not written; see the Locust log)"
    out.print(f"HTML report   {result.html_report or missing}", markup=False)
    out.print(f"results JSON  {result.results_json or missing}", markup=False)
    out.print(f"Locust log    {result.locust_log}", markup=False)
    schema = "schema created by the demo" if result.schema_created else "existing reference schema"
    server = "; embedded server started and stopped by the demo" if result.embedded_stopped else ""
    out.print(f"database      {result.database} ({schema}{server})", markup=False)
    out.print(f"platform      {result.platform_url} (stopped)", markup=False)
    out.print(
        f"load          {result.load_profile} profile at time scale {result.time_scale:g}, "
        f"{result.peak_users} users",
        markup=False,
    )
    for note in result.notes:
        out.print(f"note: {note}", markup=False)
    verdict = "PASS" if result.gate_passed else "BREACH"
    out.print(f"demo: gate {verdict}, exit code {result.exit_code}", markup=False)


@app.command(
    "demo",
    help=(
        "Everything in one command: schema, platform, provision, a gated Locust run, teardown. "
        "Serves the reference platform on a free 127.0.0.1 port, provisions a scale, runs the light profile "
        "for about a minute with the run's credentials pool, prints the gate's table and where the HTML "
        "report and results JSON are, tears the run down, verifies that no row is left, and stops what it "
        "started. Its exit code is the gate's (0 pass, 3 breach). Ctrl-C at any point still tears down "
        "and stops everything."
    ),
)
def demo(
    locust_args: list[str] | None = typer.Argument(
        None, metavar="-- LOCUST_OPTIONS",
        help="More options for the scenarios after '--', e.g. '-- --gate-min-rps 50 --wait-time 0-1'.",
    ),
    scale: str = scale_option(),
    overrides: list[str] = overrides_option(),
    seed: int | None = seed_option(),
    database_url: str | None = database_url_option(
        "PostgreSQL server to use (default: DATABASE_URL, else the embedded one). The schema goes into "
        f"this database if it has no platform tables, else into '{DEMO_DATABASE}' on the same server."
    ),
    load_profile: str = typer.Option("light", "--load-profile", help="light | medium | heavy | spike."),
    time_scale: float = typer.Option(
        DEFAULT_TIME_SCALE, "--time-scale",
        help="Multiply the profile's length (0.5: the 2-minute light profile in 1 minute).",
    ),
    users: int | None = typer.Option(None, "--users", "-u", help="Peak users (default: the profile's)."),
    spawn_rate: float | None = typer.Option(None, "--spawn-rate", "-r", help="Users started per second."),
    out_dir: Path | None = typer.Option(
        None, "--out-dir",
        help="Where the HTML report, results JSON and Locust log go (default: STATE_DIR/demo).",
    ),
    rate_limit: bool = typer.Option(
        False, "--rate-limit/--no-rate-limit",
        help="Run the platform with its rate limiter (off by default, as the guide's load tests run).",
    ),
    bcrypt_cost: int = bcrypt_cost_option(f"bcrypt cost of the passwords (the platform's is {DEFAULT_BCRYPT_COST})."),
    load_timeout: float | None = typer.Option(
        None, "--load-timeout",
        help=f"Stop Locust after this many seconds (default: profile length + {LOAD_GRACE_SECONDS:g}).",
    ),
) -> None:
    """The README's main-job command (help text above); the work is ``demo.run_demo``."""
    from agentic_loadkit.demo.cycle import run_demo
    from agentic_loadkit.demo.settings import DemoSettings

    settings = DemoSettings(
        scale=scale, overrides=tuple(overrides), seed=seed, database_url=database_url,
        state_dir=state().state_dir, load_profile=load_profile, time_scale=time_scale, users=users,
        spawn_rate=spawn_rate, out_dir=out_dir, rate_limit=rate_limit, bcrypt_cost=bcrypt_cost,
        locust_args=tuple(locust_args or ()), load_timeout=load_timeout,
    )

    async def go() -> DemoResult:
        with _DemoDisplay() as display:
            return await run_demo(settings, display)

    result = run_async(go())
    _print_result(result)
    raise typer.Exit(result.exit_code)
