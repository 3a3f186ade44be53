"""The embedded default database: started on demand, reused, resolved to, stoppable."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.cli import app as cli
from agentic_loadkit.provisioning.errors import DatabaseUnreachable
from agentic_loadkit.provisioning.target.embedded import EMBEDDED_DATABASE, EmbeddedPostgres
from agentic_loadkit.provisioning.target.resolve import resolve_database
from typer.testing import CliRunner


def _query(url: str) -> str:
    async def go() -> str:
        conn = await asyncpg.connect(url)
        try:
            return str(await conn.fetchval("SELECT current_database()"))
        finally:
            await conn.close()

    return asyncio.run(go())


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: other pytest sessions may reset /tmp/pytest-of-<user> to 0700, and the
    # embedded server's own system user must traverse every parent of its data directory.
    base = Path(tempfile.mkdtemp(prefix="loadkit-embedded-"))
    os.chmod(base, 0o711)
    yield base / "st"
    EmbeddedPostgres(base / "st").stop()
    shutil.rmtree(base, ignore_errors=True)


def test_embedded_lifecycle_and_resolver_fallback(state_dir: Path) -> None:
    emb = EmbeddedPostgres(state_dir)
    assert not emb.status().running
    with pytest.raises(DatabaseUnreachable, match="not running"):
        resolve_database(None, state_dir=state_dir, env={}, start_embedded=False)
    try:
        resolved = resolve_database(None, state_dir=state_dir, env={})
        assert resolved.source == "embedded"
        assert _query(resolved.url) == EMBEDDED_DATABASE
        st = emb.status()
        assert st.running and st.pid
        # a second resolution reuses the running server
        again = resolve_database(None, state_dir=state_dir, env={})
        assert again.url == resolved.url and emb.status().pid == st.pid
        # the CLI sees the same server
        result = CliRunner().invoke(cli.app, ["--state-dir", str(state_dir), "db", "status"])
        assert result.exit_code == 0 and "running" in result.output
        # DATABASE_URL wins over the embedded default, an explicit URL over both
        env = {"DATABASE_URL": "postgresql://x@127.0.0.1:1/envdb"}
        assert resolve_database(None, state_dir=state_dir, env=env).target.database == "envdb"
        assert resolve_database("postgresql://x@127.0.0.1:1/opt", state_dir=state_dir, env=env).source == "option"
    finally:
        assert emb.stop() is True
    assert not emb.status().running
    result = CliRunner().invoke(cli.app, ["--state-dir", str(state_dir), "db", "stop"])
    assert result.exit_code == 0 and "not running" in result.output
