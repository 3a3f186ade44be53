"""Fixtures of the hostile suite (helpers in ``hostile_support.py``).

- ``hostile_db``: a fresh reference-schema database (UUID keys) filled with foreign data
  (tenants of no run, one suspended, one whose slug and emails look like a run's), with the
  checksum of all foreign rows taken before the test: ``hostile_db.assert_intact()`` proves a
  fault changed none of them, ``hostile_db.assert_no_residue(run_id)`` proves zero rows in any
  table that references the run's tenants.
- ``private_pg``: a private embedded PostgreSQL server (never the shared one) that tests may
  stop, restart and reconfigure (``pg_hba.conf``), for the server-restart and wrong-password
  cases.  It lives outside pytest's tmp dirs, under a 0711 parent, because the server runs as
  its own system user that must traverse every parent directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.target.embedded import EmbeddedPostgres
from agentic_loadkit.provisioning.target.url import parse_database_url
from agentic_loadkit.reference_platform.schema import create_schema
from hostile_db import HostileDb, PrivateServer, Roles, make_hostile_db
from hostile_support import run


@pytest.fixture
def hostile_db(db_factory: Any) -> HostileDb:
    return make_hostile_db(db_factory.new(schema="uuid"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def roles() -> Iterator[Roles]:
    made = Roles()
    yield made
    made.drop_all()


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivateServer]:
    base = Path(tempfile.mkdtemp(prefix="loadkit-hostile-"))
    os.chmod(base, 0o711)
    emb = EmbeddedPostgres(base / "st")
    url = emb.start()
    run(create_schema(parse_database_url(url).asyncpg_url, "uuid"))
    server = PrivateServer(base / "st", emb, url)
    try:
        yield server
    finally:
        emb.stop()
        shutil.rmtree(base, ignore_errors=True)
