"""The one database resolver, used by every command, the tests and the reference platform.

Order: an explicit URL (``--database-url``), else ``DATABASE_URL``, else the embedded
default under the state directory (started on demand, reused by later commands).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg

from ..errors import DatabaseUnreachable, InputError, first_line
from .embedded import EmbeddedPostgres
from .guard import check_remote_allowed
from .statedir import default_state_dir
from .url import DatabaseTarget, parse_database_url

__all__ = ["ResolvedDatabase", "connect", "describe_target", "resolve_database"]

Source = Literal["option", "env", "embedded"]


@dataclass(frozen=True)
class ResolvedDatabase:
    """Where the toolkit will connect, and why there."""

    target: DatabaseTarget
    source: Source

    @property
    def url(self) -> str:
        """The URL rebuilt from the checked parameters, password included: for a child process or
        another settings object, never printed (use ``masked``); connections use ``connect``."""
        return self.target.asyncpg_url

    @property
    def masked(self) -> str:
        return self.target.masked


def resolve_database(
    explicit: str | None = None,
    *,
    state_dir: Path | None = None,
    env: dict[str, str] | None = None,
    start_embedded: bool = True,
    allow_remote: bool = False,
    check_remote: bool = True,
) -> ResolvedDatabase:
    """Resolve the target database; start the embedded server when it is the answer.

    The remote guard runs here, before any connection is attempted.
    """
    environ = env if env is not None else dict(os.environ)
    if explicit is not None:  # an empty --database-url is an error, not a fallback to DATABASE_URL
        resolved = ResolvedDatabase(parse_database_url(explicit, env=environ), "option")
    elif environ.get("DATABASE_URL"):
        resolved = ResolvedDatabase(parse_database_url(environ["DATABASE_URL"], env=environ), "env")
    else:
        sd = Path(state_dir) if state_dir is not None else default_state_dir(environ)
        embedded = EmbeddedPostgres(sd)
        url = embedded.start() if start_embedded else embedded.url_if_running()
        if url is None:
            raise DatabaseUnreachable(
                f"No database given (--database-url or DATABASE_URL) and the embedded server under {sd} "
                "is not running; start it with 'provision db start'."
            )
        resolved = ResolvedDatabase(parse_database_url(url, env=environ), "embedded")
    if check_remote:
        check_remote_allowed(resolved.target, allow_remote=allow_remote)
    return resolved


def describe_target(target: DatabaseTarget) -> str:
    return f"database {target.database!r} on {target.host_label}"


async def connect(
    target: DatabaseTarget | ResolvedDatabase, *, timeout: float = 10.0, **kwargs: Any
) -> asyncpg.Connection:
    """Open one asyncpg connection, turning every failure into one ``DatabaseUnreachable`` sentence."""
    t = target.target if isinstance(target, ResolvedDatabase) else target
    where = describe_target(t)
    # Like pg_dump and pg_restore, the toolkit's sessions run without a statement timeout: one set on
    # the role for the application's queries (say 50 ms) would cancel every COPY and every delete.
    # A lock_timeout on the role is honoured.  Client settings override the role's.
    params = t.connect_kwargs()
    kwargs["server_settings"] = {
        "statement_timeout": "0", **params.pop("server_settings", {}), **(kwargs.get("server_settings") or {})
    }
    try:  # the checked hosts and ports, never the URL string (see dburl)
        return await asyncpg.connect(**params, timeout=timeout, **kwargs)
    except asyncpg.InvalidPasswordError:
        raise _unreachable(t, f"PostgreSQL refused the password for user {t.user!r} on {where}.") from None
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        why = f"PostgreSQL refused the login for user {t.user!r} on {where} ({first_line(exc)})."
        raise _unreachable(t, why) from None
    except asyncpg.InvalidCatalogNameError:
        raise _unreachable(t, f"The {where} does not exist.") from None
    except (TimeoutError, OSError, socket.gaierror, ConnectionError) as exc:
        why = f"Cannot reach PostgreSQL at {t.host_label} for {t.database!r} ({first_line(exc)})."
        raise _unreachable(t, why) from None
    except asyncpg.PostgresError as exc:
        why = f"PostgreSQL at {t.host_label} refused the connection to {t.database!r} ({first_line(exc)})."
        raise _unreachable(t, why) from None
    except ValueError as exc:
        raise InputError(f"The database URL {t.masked!r} is not usable ({first_line(exc)}).") from None


def _unreachable(t: DatabaseTarget, message: str) -> DatabaseUnreachable:
    """``message`` about ``t``, naming its first host, port and database for the caller."""
    return DatabaseUnreachable(message, host=t.hosts[0][0], port=t.hosts[0][1], database=t.database)
