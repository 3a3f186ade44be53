"""The options and arguments more than one command takes, each declared once.

Each factory returns the ``typer.Option``/``typer.Argument`` to use as a parameter's
default, e.g. ``database_url: str | None = database_url_option()``; a command whose
option means something more (the demo's ``--database-url``) passes its own help.
Defaults shown by ``--help`` come from the light modules that define them, so that
declaring the commands imports no stack.
"""

from __future__ import annotations

from typing import Any

import typer
from agentic_loadkit.provisioning.generate.passwords import DEFAULT_BCRYPT_COST

__all__ = [
    "allow_remote_option",
    "bcrypt_cost_option",
    "database_url_option",
    "dry_run_option",
    "json_option",
    "overrides_option",
    "quiet_option",
    "run_id_argument",
    "scale_option",
    "schema_map_option",
    "seed_option",
    "state_dir_option",
]

DATABASE_URL_HELP = "Target database (default: DATABASE_URL, else embedded)."


def database_url_option(help: str = DATABASE_URL_HELP) -> Any:
    return typer.Option(None, "--database-url", help=help)


def allow_remote_option() -> Any:
    return typer.Option(False, "--allow-remote", help="Allow a database that is not on this machine.")


def state_dir_option() -> Any:
    return typer.Option(
        None, "--state-dir", envvar="PROVISION_STATE_DIR",
        help="State directory (embedded database, credentials). Default: ./.provision",
    )


def json_option(what: str) -> Any:
    """``--json``: print ``what`` (the summary, the runs, ...) as JSON on stdout."""
    return typer.Option(False, "--json", help=f"Print the {what} as JSON.")


def quiet_option() -> Any:
    return typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")


def dry_run_option(help: str) -> Any:
    return typer.Option(False, "--dry-run", help=help)


def schema_map_option(help: str) -> Any:
    return typer.Option(None, "--schema-map", help=help)


def run_id_argument(help: str) -> Any:
    """The optional run id of ``status``, ``credentials`` and ``down`` (each says its default)."""
    return typer.Argument(None, help=help)


def scale_option() -> Any:
    return typer.Option("small", "--scale", help="small | medium | large | xlarge.")


def overrides_option() -> Any:
    return typer.Option([], "--set", help="Override a count, e.g. --set agents=250000 (repeatable).")


def seed_option() -> Any:
    return typer.Option(None, "--seed", help="Make the data exactly reproducible (default: random).")


def bcrypt_cost_option(help: str = "bcrypt cost of the password hashes.") -> Any:
    return typer.Option(DEFAULT_BCRYPT_COST, "--bcrypt-cost", help=help)
