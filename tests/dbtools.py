"""Small synchronous database helpers shared by the test helper modules.

One short asyncpg connection per call: tests read and poke the database from
synchronous code (and from outside the process under test), never through the
toolkit's own connection code.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from agentic_loadkit.provisioning.target.url import DatabaseTarget

__all__ = ["execute", "fetch", "fetch_async", "fetchval", "run"]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def fetch_async(target: DatabaseTarget, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(target.asyncpg_url)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


def fetch(target: DatabaseTarget, query: str, *args: Any) -> list[asyncpg.Record]:
    return list(run(fetch_async(target, query, *args)))


def fetchval(target: DatabaseTarget, query: str, *args: Any) -> Any:
    rows = fetch(target, query, *args)
    return rows[0][0] if rows else None


def execute(target: DatabaseTarget, statement: str, *args: Any) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            await conn.execute(statement, *args)
        finally:
            await conn.close()

    run(go())
