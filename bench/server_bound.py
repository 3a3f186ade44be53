"""The server-only bound of a run: how fast the server alone loads the very rows ``up`` made.

After ``provision up``, each loaded table is exported in two halves with binary
``COPY ... TO`` files, the tables are truncated, and the halves are loaded back by two
parallel sessions (the toolkit's stream count), each half in its own transaction, with
the same indexes and the same foreign-key mode as ``up``'s default
(``session_replication_role = replica``, ``synchronous_commit = off``); ANALYZE is not
part of it.  The server reads the files itself (``COPY ... FROM '/path'``, which needs a
superuser and a server on this machine); where it cannot, the client streams the file
bytes (``copy_to_table(source=path)``), which costs the client almost nothing.

The bound is what no client can beat on this server for these rows; ``up`` start to
ready divided by it says how much of the load the client's own work still costs.
Used by ``provision_bench.py``; it runs in the bench's scratch database, which is
dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.target.url import DatabaseTarget

__all__ = ["LOADED_TABLES", "ServerBound", "measure_server_bound"]

LOADED_TABLES = ("tenants", "users", "agents", "workflows", "collections", "mcp_servers")
SESSIONS = 2


@dataclass(frozen=True)
class ServerBound:
    seconds: float  # both sessions, from the first COPY to the last commit
    rows: int
    file_mb: float
    server_side: bool  # True: the server read the files itself


def _quote(name: str) -> str:
    """``schema.table`` or ``table`` as a quoted SQL name (the bench's own reference schemas only)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split(".", 1))


async def _export(conn: asyncpg.Connection, table: str, folder: str) -> tuple[list[str], int]:
    """Two files with the halves of ``table`` (binary COPY), and its row count."""
    rows = int(await conn.fetchval(f"SELECT count(*) FROM {_quote(table)}"))
    half = rows // 2
    paths = []
    for k, (offset, limit) in enumerate(((0, half), (half, rows - half))):
        path = os.path.join(folder, f"{table.replace('.', '_')}.{k}.copy")
        await conn.copy_from_query(
            f"SELECT * FROM {_quote(table)} ORDER BY ctid OFFSET {offset} LIMIT {limit}",
            output=path,
            format="binary",
        )
        os.chmod(path, 0o644)  # the server process reads it
        paths.append(path)
    return paths, rows


async def _load_half(conn: asyncpg.Connection, table: str, path: str, server_side: bool) -> None:
    async with conn.transaction():
        if server_side:
            await conn.execute(f"COPY {_quote(table)} FROM '{path}' (FORMAT binary)")
        else:
            schema, _, name = table.rpartition(".")
            await conn.copy_to_table(name, schema_name=schema or None, source=path, format="binary")


async def _can_read_files(conn: asyncpg.Connection, probe: str) -> bool:
    try:
        await conn.execute(f"SELECT pg_read_binary_file('{probe}', 0, 1)")
    except asyncpg.PostgresError:
        return False
    return True


async def measure_server_bound(target: DatabaseTarget, tables: Sequence[str] = LOADED_TABLES) -> ServerBound:
    """Export, truncate and reload ``tables`` of ``target`` (destroys their contents' order, not their rows)."""
    folder = tempfile.mkdtemp(prefix="server-bound-", dir="/tmp")
    os.chmod(folder, 0o755)
    ctl = await asyncpg.connect(target.asyncpg_url)
    sessions: list[asyncpg.Connection] = []
    try:
        halves: dict[str, list[str]] = {}
        total = 0
        for table in tables:
            halves[table], n = await _export(ctl, table, folder)
            total += n
        size = sum(os.path.getsize(p) for paths in halves.values() for p in paths)
        server_side = await _can_read_files(ctl, halves[tables[0]][0])
        await ctl.execute(f"TRUNCATE {', '.join(_quote(t) for t in tables)} CASCADE")
        await ctl.execute("CHECKPOINT")  # the truncation's own writes are not the load's
        for _ in range(SESSIONS):
            conn = await asyncpg.connect(target.asyncpg_url)
            await conn.execute("SET synchronous_commit = off; SET session_replication_role = replica")
            sessions.append(conn)

        async def session(k: int) -> None:
            for table in tables:
                await _load_half(sessions[k], table, halves[table][k], server_side)

        started = time.perf_counter()
        await asyncio.gather(*(session(k) for k in range(SESSIONS)))
        seconds = time.perf_counter() - started
        loaded = int(
            await ctl.fetchval(
                "SELECT " + " + ".join(f"(SELECT count(*) FROM {_quote(t)})" for t in tables)
            )
        )
        if loaded != total:
            raise RuntimeError(f"the bound reloaded {loaded:,} rows of {total:,}")
        return ServerBound(seconds, total, size / 1e6, server_side)
    finally:
        for conn in sessions:
            await conn.close()
        await ctl.close()
        shutil.rmtree(folder, ignore_errors=True)


def describe(bound: ServerBound, up: dict[str, Any]) -> list[str]:
    """The bound's lines for the bench's print-out, next to ``up``'s JSON summary (``elapsed``, ``wall_s``)."""
    how = "the server read the files" if bound.server_side else "the client streamed the files"
    return [
        f"  server-only bound: {bound.rows:,} rows ({bound.file_mb:,.1f} MB of binary COPY) reloaded in "
        f"{bound.seconds:.2f} s on {SESSIONS} sessions, triggers off, ANALYZE excluded ({how})",
        f"  up start-to-ready {up['elapsed']:.2f} s = {up['elapsed'] / bound.seconds:.2f}x the bound: up at "
        f"{100 * bound.seconds / up['elapsed']:.0f} % of the bound (goal >= 80 %); as a process "
        f"{up['wall_s']:.2f} s = {up['wall_s'] / bound.seconds:.2f}x: {100 * bound.seconds / up['wall_s']:.0f} %",
    ]
