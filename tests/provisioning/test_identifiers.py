"""Identifiers reach PostgreSQL exactly as named, whatever characters they hold."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.identifiers import qualified_name, quote_identifier
from agentic_loadkit.provisioning.target.url import DatabaseTarget

NAMES = ["plain", "Mixed Case", 'with"quote', "per%cent", "100%", "semi;colon--", "Ünïcode"]


@pytest.mark.parametrize("name", NAMES)
def test_a_quoted_name_is_the_name_the_server_sees(fresh_db: DatabaseTarget, name: str) -> None:
    async def go() -> tuple[str, str]:
        conn = await asyncpg.connect(**fresh_db.connect_kwargs())
        try:
            await conn.execute(f"CREATE TABLE {qualified_name('public', name)} ({quote_identifier(name)} int)")
            try:
                column = await conn.fetchval(
                    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum = 1",
                    qualified_name("public", name),
                )
                table = await conn.fetchval("SELECT relname FROM pg_class WHERE oid = $1::regclass",
                                            qualified_name("public", name))
                return column, table
            finally:
                await conn.execute(f"DROP TABLE {qualified_name('public', name)}")
        finally:
            await conn.close()

    assert asyncio.run(go()) == (name, name)
