"""Teardown's connections: session settings, planner settings per statement, batches of tenants.

Teardown's cost must follow the run's rows, not the tables' (issue 4: ten times as much
foreign data may cost at most 1.2x the time).  PostgreSQL's defaults work against that in
three measured ways, each answered here for teardown's own sessions only (the platform's
triggers and constraints stay as they are): statements anchored on all of a run's tenants
get plans sized by the table; custom plans re-plan the platform's foreign-key checks for
every deleted row; generic plans re-cast the tenant ids for every row read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import asyncpg

from ..target.resolve import ResolvedDatabase, connect, resolve_database
from .model import DownSettings

__all__ = [
    "APPLICATION_NAME",
    "DB_ERRORS",
    "DELETE_SETTINGS",
    "SESSION_SETTINGS",
    "chunked",
    "close_quietly",
    "connect_for",
    "delete_settings",
    "index_planner",
    "open_connection",
    "read_one",
]

APPLICATION_NAME = "provision-down"
DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


# Session settings of teardown's connections, each skipped where the server does not know it:
# its statements touch few rows each (one batch of tenants), so parallel workers and JIT
# compilation cost more than they bring (JIT alone: ~10 ms a statement); and a killed client is
# noticed even while a delete waits on a lock (PostgreSQL ≥ 14).
SESSION_SETTINGS = (
    "SET max_parallel_workers_per_gather = 0",
    "SET jit = off",
    "SET client_connection_check_interval = '1s'",
)
# Inside delete transactions, generic plans: the platform's foreign-key triggers run two lookups
# per deleted row, and with custom plans PostgreSQL re-plans them for every row, reading the
# (growing) column statistics each time: measured 2.5x slower teardown with 10x foreign data.
DELETE_SETTINGS = ("SET LOCAL synchronous_commit = off", "SET LOCAL plan_cache_mode = force_generic_plan")


def index_planner(force_index: bool) -> str:
    """Plans driven by the batch's tenants for a statement whose every join has an index.

    Left alone, PostgreSQL picks plans that follow the table's size rather than the run's:
    a sequential (or full index) scan of a table ten times bigger when its statistics
    misjudge how many rows a batch of tenants holds (measured: the check of
    agents.created_by went from 0.02 s to 1.3 s per batch with 10x foreign data).  With
    sequential and plain index scans, hash and merge joins off, what is left is bitmap
    scans on the batch's keys and nested loops down the foreign-key indexes.  Where a join
    has no index, the planner keeps its choice (a hash join beats a nested loop over
    sequential scans).
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
    """``DELETE_SETTINGS`` the server knows (plan_cache_mode: PostgreSQL ≥ 12)."""
    return DELETE_SETTINGS if conn.get_server_version().major >= 12 else DELETE_SETTINGS[:1]


async def open_connection(db: ResolvedDatabase) -> asyncpg.Connection:
    conn = await connect(db, server_settings={"application_name": APPLICATION_NAME})
    for statement in SESSION_SETTINGS:
        try:
            await conn.execute(statement)
        except asyncpg.PostgresError:
            pass
    return conn


async def connect_for(settings: DownSettings) -> tuple[asyncpg.Connection, ResolvedDatabase]:
    db = resolve_database(settings.database_url, state_dir=settings.state_dir, allow_remote=settings.allow_remote)
    return await open_connection(db), db


async def close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=5)
    except DB_ERRORS:
        conn.terminate()


def chunked(ids: Sequence[str], size: int) -> list[list[str]]:
    size = max(1, size)
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
