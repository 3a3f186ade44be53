"""Test databases of the hostile suite: foreign data with its checksum, login roles, a private server.

- ``HostileDb``/``make_hostile_db``: a reference-schema database filled with foreign data and
  the checksum of all foreign rows taken before the test;
- ``Roles``: login roles made for one test on the shared server (dropped after);
- ``PrivateServer``: a private embedded PostgreSQL server that tests may stop, restart and
  reconfigure.  The fixtures that make them are in ``conftest.py``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from agentic_loadkit.provisioning.target.embedded import EmbeddedPostgres
from agentic_loadkit.provisioning.target.url import DatabaseTarget, parse_database_url
from hostile_support import Foreign, checksum, ledger_tenants, residue, run, seed_foreign_async

__all__ = ["HostileDb", "PrivateServer", "Roles", "make_hostile_db"]


@dataclass
class HostileDb:
    target: DatabaseTarget
    foreign: Foreign
    baseline: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.target.url

    def assert_intact(self) -> None:
        """Every foreign row is exactly as before the test."""
        assert checksum(self.target) == self.baseline

    def assert_no_residue(self, run_id: str) -> None:
        tenants = ledger_tenants(self.target, run_id)
        assert tenants, f"the ledger records no tenant for run {run_id}"
        assert residue(self.target, tenants) == {}


def make_hostile_db(target: DatabaseTarget) -> HostileDb:
    foreign = run(seed_foreign_async(target.asyncpg_url))
    db = HostileDb(target, foreign)
    db.baseline = checksum(target)
    assert all(not v.startswith("0:") for k, v in db.baseline.items()), db.baseline  # every table has foreign rows
    return db


class Roles:
    """Login roles made for one test on the shared server (roles are cluster-wide: dropped after)."""

    def __init__(self) -> None:
        self.made: list[tuple[str, DatabaseTarget]] = []

    def create(
        self, db: DatabaseTarget, *, password: str, settings: dict[str, str] | None = None, read_only: bool = False
    ) -> DatabaseTarget:
        """A role with ``password`` that can write the platform tables (or only read them) and create the
        ledger schema; ``settings`` become ``ALTER ROLE ... SET``.  Returns ``db`` as that role."""
        name = f"hostile_{secrets.token_hex(4)}"
        statements = [f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"]
        statements += [f"ALTER ROLE {name} SET {k} = '{v}'" for k, v in (settings or {}).items()]
        statements += [f"GRANT USAGE ON SCHEMA public TO {name}"]
        if read_only:
            statements += [f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}"]
        else:
            statements += [
                f'GRANT CREATE, CONNECT ON DATABASE "{db.database}" TO {name}',
                f"GRANT CREATE ON SCHEMA public TO {name}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {name}",
                f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {name}",
            ]
        run(_execute_all(db.asyncpg_url, statements))
        self.made.append((name, db))
        user_url = db.url.replace("://postgres@", f"://{name}:{password}@", 1)
        assert user_url != db.url, db.url
        return parse_database_url(user_url)

    def drop_all(self) -> None:
        for name, db in self.made:
            run(_execute_all(db.asyncpg_url, [f"DROP OWNED BY {name} CASCADE", f"DROP ROLE {name}"]))
        self.made.clear()


async def _execute_all(url: str, statements: list[str]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass
class PrivateServer:
    state_dir: Path
    embedded: EmbeddedPostgres
    url: str  # agentic_db on the private server (Unix socket)

    @property
    def target(self) -> DatabaseTarget:
        return parse_database_url(self.url)

    @property
    def pgdata(self) -> Path:
        return self.embedded.pgdata

    def stop(self) -> None:
        assert self.embedded.stop() is True

    def start(self) -> None:
        self.url = self.embedded.start()

    def wrong_password_url(self, role: str) -> str:
        """A URL for ``role`` with a wrong password; the server checks passwords (scram-sha-256) for
        that role only (a ``pg_hba.conf`` line ahead of the embedded server's trust lines)."""
        hba = self.pgdata / "pg_hba.conf"
        line = f"local all {role} scram-sha-256\n"
        text = hba.read_text()
        if line not in text:
            hba.write_text(line + text)  # keeps the file's owner (the server's system user)
            run(_execute_all(self.target.asyncpg_url, [f"CREATE ROLE {role} LOGIN PASSWORD 'right-secret'",
                                                       "SELECT pg_reload_conf()"]))
        return self.url.replace("://postgres@", f"://{role}:wrong-secret@", 1)
