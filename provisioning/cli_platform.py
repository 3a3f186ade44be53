"""``provision platform init|serve``: the reference Agentic Platform (under ``fixtures/``)."""

from __future__ import annotations

import typer

from .cli import app, out_console, run_async, state
from .database import connect, resolve_database

platform_app = typer.Typer(help="The reference Agentic Platform: create its schema, serve it.", no_args_is_help=True)
app.add_typer(platform_app, name="platform")


@platform_app.command("init")
def platform_init(
    database_url: str | None = typer.Option(None, "--database-url", help="Target database (default: DATABASE_URL, else embedded)."),
    id_kind: str = typer.Option("uuid", "--id-kind", help="Primary-key type: uuid or integer."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback database."),
) -> None:
    """Create the reference platform's schema (tables, foreign keys, indexes) if missing."""
    from .errors import InputError

    async def go() -> str:
        if id_kind not in ("uuid", "integer"):
            raise InputError(f"--id-kind must be 'uuid' or 'integer', not {id_kind!r}.")
        from ..fixtures.platform.schema import create_schema

        db = resolve_database(database_url, state_dir=state().state_dir, allow_remote=allow_remote)
        conn = await connect(db)  # a clear sentence when unreachable
        await conn.close()
        await create_schema(db.url, id_kind)  # type: ignore[arg-type]
        return db.masked

    where = run_async(go())
    out_console.print(f"reference platform schema ready in {where}", markup=False)
