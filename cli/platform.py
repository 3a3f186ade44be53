"""``provision platform init|serve``: the reference Agentic Platform (``agentic_loadkit.reference_platform``)."""

from __future__ import annotations

import typer

from .options import allow_remote_option, database_url_option
from .root import app, err_console, guard, out_console, run_async, state

platform_app = typer.Typer(
    help="The reference Agentic Platform: create its schema, serve it.", no_args_is_help=True
)
app.add_typer(platform_app, name="platform")


@platform_app.command("init")
def platform_init(
    database_url: str | None = database_url_option(),
    id_kind: str = typer.Option("uuid", "--id-kind", help="Primary-key type: uuid or integer."),
    dialect: str = typer.Option(
        "v1", "--dialect", help="Schema: v1 (the platform's code, 21 tables) or guide (the load-testing guide's)."
    ),
    allow_remote: bool = allow_remote_option(),
) -> None:
    """Create the reference platform's schema (tables, foreign keys, indexes) if missing."""
    import sqlalchemy.exc
    from agentic_loadkit.provisioning.api import connect, resolve_database
    from agentic_loadkit.provisioning.errors import DatabaseRefused, InputError, first_line

    async def go() -> str:
        if id_kind not in ("uuid", "integer"):
            raise InputError(f"--id-kind must be 'uuid' or 'integer', not {id_kind!r}.")
        if dialect not in ("v1", "guide"):
            raise InputError(f"--dialect must be 'v1' or 'guide', not {dialect!r}.")
        from agentic_loadkit.reference_platform.schema import create_schema

        db = resolve_database(database_url, state_dir=state().state_dir, allow_remote=allow_remote)
        conn = await connect(db)  # a clear sentence when unreachable
        await conn.close()
        try:
            await create_schema(db.url, id_kind, dialect=dialect)  # type: ignore[arg-type]
        except sqlalchemy.exc.DBAPIError as exc:  # one transaction: nothing was created
            cause = first_line(getattr(exc, "orig", None) or exc)
            raise DatabaseRefused(
                f"PostgreSQL refused to create the reference schema ({cause.split(': ', 1)[-1]}); nothing was created."
            ) from None
        return db.masked

    where = run_async(go())
    out_console.print(f"reference platform schema ({dialect} dialect) ready in {where}", markup=False)


@platform_app.command("serve")
def platform_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0 picks a free one)."),
    database_url: str | None = database_url_option(),
    no_rate_limit: bool = typer.Option(
        False, "--no-rate-limit",
        help="Turn the rate limiter off (guide: RATE_LIMIT_ENABLED=false; v1: reference-only, the real one cannot).",
    ),
    dialect: str | None = typer.Option(
        None, "--dialect", help="API dialect: v1 or guide (default: the live schema's; v1 if users.password_hash)."
    ),
    allow_remote: bool = allow_remote_option(),
) -> None:
    """Serve the reference platform in the foreground (uvicorn, no access log) until Ctrl-C.

    Other settings come from the environment: RATE_LIMIT_PER_MINUTE, RATE_LIMIT_PER_HOUR,
    JWT_SECRET, ACCESS_TOKEN_TTL_SECONDS, PLATFORM_V1_RATE_LIMIT, PLATFORM_V1_LIMIT_HEADERS,
    PLATFORM_BCRYPT_BLOCKING, PLATFORM_METRICS, PLATFORM_BREAK_ISOLATION, PLATFORM_FAULTS.
    """
    from agentic_loadkit.provisioning.api import resolve_database
    from agentic_loadkit.provisioning.errors import InputError
    from agentic_loadkit.provisioning.progress import ProgressEvent
    from agentic_loadkit.reference_platform.server import run_platform
    from agentic_loadkit.reference_platform.settings import PlatformSettings

    def show(event: ProgressEvent) -> None:
        out_console.print(event.message, markup=False)
        err_console.print("press Ctrl-C to stop", markup=False)

    def serve() -> None:
        if not 0 <= port <= 65535:
            raise InputError(f"--port {port} is outside 0-65535.")
        db = resolve_database(database_url, state_dir=state().state_dir, allow_remote=allow_remote)
        settings = PlatformSettings.from_env(database_url=db.url, allow_remote=allow_remote)
        if no_rate_limit:
            settings = settings.with_overrides(rate_limit_enabled=False, v1_rate_limit=False)
        if dialect is not None:
            if dialect not in ("v1", "guide"):
                raise InputError(f"--dialect must be 'v1' or 'guide', not {dialect!r}.")
            settings = settings.with_overrides(dialect=dialect)
        run_platform(settings, host=host, port=port, progress=show)

    guard(serve)
    out_console.print("stopped", markup=False)
