"""``provision db start|stop|status|url``: the embedded default database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from .root import app, guard, out_console, state

if TYPE_CHECKING:
    from agentic_loadkit.provisioning.api import EmbeddedPostgres

db_app = typer.Typer(help="Manage the embedded PostgreSQL server (the default database).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _embedded() -> EmbeddedPostgres:
    from agentic_loadkit.provisioning.api import EmbeddedPostgres, default_state_dir

    return EmbeddedPostgres(state().state_dir or default_state_dir())


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server (if needed) and print its URL."""
    from agentic_loadkit.provisioning.api import mask_url

    url = guard(_embedded().start)
    out_console.print(mask_url(url), markup=False)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server if it runs."""
    emb = _embedded()
    was = guard(emb.stop)
    message = f"stopped the embedded server under {emb.pgdata}" if was else "the embedded server was not running"
    out_console.print(message, markup=False)


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server runs, where, and its URL."""
    from agentic_loadkit.provisioning.api import mask_url

    st = guard(_embedded().status)
    if st.running:
        url = mask_url(st.url) if st.url else "unknown"
        out_console.print(f"running (pid {st.pid}) data {st.pgdata} url {url}", markup=False)
    else:
        out_console.print(f"not running (data {st.pgdata})", markup=False)
        raise typer.Exit(3)


@db_app.command("url")
def db_url() -> None:
    """Print the embedded server's URL (starting it if needed)."""
    from agentic_loadkit.provisioning.api import mask_url

    out_console.print(mask_url(guard(_embedded().start)), markup=False)
