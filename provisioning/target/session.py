"""The toolkit's own database sessions: opening, closing and dropping them, what a failure means.

``up`` and ``down`` open their connections here, each named (``application_name``) so
that a stuck backend of ours can be found in ``pg_stat_activity`` and only ours stopped.
A failed session is classified here too: a lost connection (class 08 or 57P) is not a
refused row, and the PostgreSQL error behind a SQLAlchemy one is found for the message.

Teardown's sessions also carry planner settings: its cost must follow the run's rows,
not the tables' sizes.  PostgreSQL's defaults work against that in three ways, each
answered for teardown's own sessions only (the platform's triggers and constraints stay
as they are): statements anchored on all of a run's tenants get plans sized by the
table; custom plans re-plan the platform's foreign-key checks for every deleted row;
generic plans re-cast the tenant ids for every row read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg

from .resolve import ResolvedDatabase, connect, resolve_database

__all__ = [
    "DB_ERRORS",
    "DELETE_SETTINGS",
    "DOWN_SESSION",
    "TEARDOWN_SESSION_SETTINGS",
    "UP_SESSION",
    "SessionKind",
    "chunked",
    "close_connection",
    "connect_for",
    "connection_lost",
    "delete_settings",
    "drop_connection",
    "index_planner",
    "open_connection",
    "postgres_error",
    "read_one",
]

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)

# Session settings of teardown's connections, each skipped where the server does not know it:
# its statements touch few rows each (one batch of tenants), so parallel workers and JIT
# compilation cost more than they bring; and a killed client is noticed even while a delete
# waits on a lock (PostgreSQL >= 14).
TEARDOWN_SESSION_SETTINGS = (
    "SET max_parallel_workers_per_gather = 0",
    "SET jit = off",
    "SET client_connection_check_interval = '1s'",
)
# Inside delete transactions, generic plans: the platform's foreign-key triggers run two lookups
# per deleted row, and with custom plans PostgreSQL re-plans them for every row, reading the
# (growing) column statistics each time.
DELETE_SETTINGS = ("SET LOCAL synchronous_commit = off", "SET LOCAL plan_cache_mode = force_generic_plan")


@dataclass(frozen=True)
class SessionKind:
    """Whose session it is: its ``application_name`` and the settings it starts with."""

    application_name: str
    settings: tuple[str, ...] = ()


UP_SESSION = SessionKind("provision-up")
DOWN_SESSION = SessionKind("provision-down", TEARDOWN_SESSION_SETTINGS)


class TargetSettings(Protocol):
    """The part of a command's settings that says which database to use."""

    @property
    def database_url(self) -> str | None: ...
    @property
    def state_dir(self) -> Path | None: ...
    @property
    def allow_remote(self) -> bool: ...


async def open_connection(db: ResolvedDatabase, kind: SessionKind) -> asyncpg.Connection:
    """A connection named for ``kind``, with each of its settings the server knows."""
    conn = await connect(db, server_settings={"application_name": kind.application_name})
    for statement in kind.settings:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(statement)
    return conn


async def connect_for(settings: TargetSettings, kind: SessionKind) -> tuple[asyncpg.Connection, ResolvedDatabase]:
    """Resolve the database ``settings`` name (the remote guard first) and open a ``kind`` session."""
    db = resolve_database(settings.database_url, state_dir=settings.state_dir, allow_remote=settings.allow_remote)
    return await open_connection(db, kind), db


async def close_connection(conn: asyncpg.Connection) -> None:
    """Close within five seconds, else drop: closing never raises over the error being reported."""
    try:
        await asyncio.wait_for(conn.close(), 5)
    except BaseException:
        drop_connection(conn)


def drop_connection(conn: asyncpg.Connection) -> None:
    """Abort a connection we give up on.  asyncio can raise from a transport whose peer already
    closed it ('NoneType' object has no attribute 'call_soon'): that must not replace the one
    sentence the caller reports."""
    with contextlib.suppress(Exception):
        conn.terminate()


def connection_lost(exc: asyncpg.PostgresError) -> bool:
    """A server error that ends the connection (class 08, or 57P: the backend was terminated or the
    server shut down), not a refused row.  Whether a backend terminated mid-COPY surfaces as this or as
    a closed socket depends on when asyncpg next reads; both mean the connection was lost."""
    return str(getattr(exc, "sqlstate", "") or "").startswith(("08", "57P"))


def postgres_error(exc: BaseException) -> asyncpg.PostgresError | None:
    """The PostgreSQL error behind ``exc`` (SQLAlchemy, used for reflection, wraps asyncpg's)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, asyncpg.PostgresError):
            return seen
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


def index_planner(force_index: bool) -> str:
    """Plans driven by the batch's tenants for a statement whose every join has an index.

    Left alone, PostgreSQL picks plans that follow the table's size rather than the run's:
    a sequential (or full index) scan of a table ten times bigger when its statistics
    misjudge how many rows a batch of tenants holds.  With sequential and plain index
    scans, hash and merge joins off, what is left is bitmap scans on the batch's keys and
    nested loops down the foreign-key indexes.  Where a join has no index, the planner
    keeps its choice (a hash join beats a nested loop over sequential scans).
    """
    value = "off" if force_index else "on"
    methods = ("seqscan", "indexscan", "indexonlyscan", "hashjoin", "mergejoin")
    return "; ".join(f"SET LOCAL enable_{m} = {value}" for m in methods)


async def read_one(conn: asyncpg.Connection, sql: str, args: Sequence[Any], *, force_index: bool) -> Any:
    """One read-only statement in its own transaction with ``index_planner`` settings; its first row."""
    async with conn.transaction(readonly=True):
        # custom plans: the tenant ids become constants (cast once, hashed), never re-cast per row
        custom = "; SET LOCAL plan_cache_mode = force_custom_plan" if conn.get_server_version().major >= 12 else ""
        await conn.execute(index_planner(force_index) + custom)
        return await conn.fetchrow(sql, *args)


def delete_settings(conn: asyncpg.Connection) -> tuple[str, ...]:
    """``DELETE_SETTINGS`` the server knows (plan_cache_mode: PostgreSQL >= 12)."""
    return DELETE_SETTINGS if conn.get_server_version().major >= 12 else DELETE_SETTINGS[:1]


def chunked(ids: Sequence[str], size: int) -> list[list[str]]:
    """``ids`` in batches of ``size`` (at least one): one batch of tenants per statement."""
    size = max(1, size)
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
