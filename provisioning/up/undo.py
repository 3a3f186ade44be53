"""Undo a failed ``up``: what the undo needs to know about the run, and the undo itself.

``RunState`` holds what the undo needs: the run id, whether the run row was recorded,
the tenant ids, the table plans, the loader (which table failed, which stream backends
it dropped), and every other connection and task the run opened.  ``failure`` turns any
exception (an error, a lost connection, Ctrl-C) into the one exception to report, after
deleting the run's rows (children first, by the tenant ids the ledger committed with the
tenants, never by ids the run only meant to use) and marking it ``failed``; if even
that is impossible the run stays ``provisioning`` with its tenants in the ledger and
the message says that ``provision down`` finishes the job.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ..errors import DatabaseRefused, Interrupted, ProvisionError, ProvisioningFailed, first_line
from ..progress import ProgressCallback, ProgressEvent
from ..runs import ledger
from ..runs.poolfile import remove_run_dir
from ..schema.reflect import TablePlan
from ..target.resolve import ResolvedDatabase
from ..target.session import (
    DB_ERRORS,
    UP_SESSION,
    close_connection,
    connection_lost,
    drop_connection,
    open_connection,
    postgres_error,
)
from .load import RunLoader, delete_run_rows
from .settings import PreparedRun, UpSettings

__all__ = ["RunState", "failure"]


async def _stop_backends(conn: asyncpg.Connection, pids: list[int]) -> None:
    """Terminate our own dropped backends (matched by pid and application name), waiting for them."""
    if not pids:
        return
    wait = ", 5000" if conn.get_server_version().major >= 14 else ""
    await conn.execute(
        f"SELECT pg_terminate_backend(pid{wait}) FROM pg_stat_activity "
        "WHERE pid = ANY($1::int[]) AND application_name = $2 AND pid <> pg_backend_pid()",
        pids,
        UP_SESSION.application_name,
    )


class RunState:
    """One ``up`` in progress: holds what the undo needs if anything fails."""

    def __init__(
        self, settings: UpSettings, prep: PreparedRun, db: ResolvedDatabase, progress: ProgressCallback
    ):
        self.settings, self.prep, self.db, self.progress = settings, prep, db, progress
        self.run_id = ledger.new_run_id()
        self.phases: dict[str, float] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.side_conns: list[asyncpg.Connection] = []  # connections besides the control one and the loader's
        self.plans: dict[str, TablePlan] = {}
        self.tenant_ids: list[Any] = []
        self.recorded = False
        self.loader: RunLoader | None = None
        self.ctl_pid: int | None = None

    @property
    def table(self) -> str:
        """The table whose load failed, or ''."""
        return (self.loader.failed_table or "") if self.loader is not None else ""

    def phase(self, name: str, **data: Any) -> None:
        self.progress(ProgressEvent("phase", name=name, data=data))

    async def committed_tenants(self, conn: asyncpg.Connection) -> list[Any]:
        """The run's tenant ids that the ledger holds: ``run_tenants`` rows commit in the tenants'
        own transaction, so these and only these tenants are certainly the run's.  An id the run
        meant to use but whose insert failed (say, taken by a row someone inserted meanwhile)
        is not among them, and nothing of that tenant is deleted."""
        recorded = set(await ledger.run_tenant_ids(conn, self.run_id, self.settings.ledger_schema))
        return [t for t in self.tenant_ids if str(t) in recorded]

    async def undo(self, ctl: asyncpg.Connection | None, error: str) -> str | None:
        """Delete the run's rows and mark it failed; return None on success, else why not.

        ``ctl`` is the control connection when it is healthy and idle, else None (then a
        new connection retakes the run's lock).  Backends of dropped connections may still
        be busy inside a statement (they notice a closed socket only when they next read
        from it), holding row locks the deletes would wait for: they are terminated first.
        """
        for task in self.tasks:
            task.cancel()
        dropped = list(self.side_conns)
        # a connection the server already closed has no backend left (and asyncpg no pid for it)
        pids = [w.get_server_pid() for w in dropped if not w.is_closed()]
        pids.extend(self.loader.stream_pids if self.loader is not None else ())
        if ctl is None and self.ctl_pid is not None:
            pids.append(self.ctl_pid)
        for w in dropped:
            drop_connection(w)
        remove_run_dir(self.prep.state_dir, self.run_id)
        if not self.recorded:
            return None
        conn = ctl
        try:
            if conn is None or conn.is_closed():
                conn = await open_connection(self.db, UP_SESSION)
            await _stop_backends(conn, pids)
            if conn is not ctl:
                await conn.execute("SET lock_timeout = '30s'")
                await ledger.acquire_run_lock(conn, self.run_id, wait=True)
            async with conn.transaction():
                ours = await self.committed_tenants(conn)
                if ours:
                    await delete_run_rows(conn, self.plans, ours)
                await ledger.set_status(
                    conn, self.run_id, "failed", error=error[:500], schema=self.settings.ledger_schema
                )
            return None
        except (*DB_ERRORS, ProvisionError) as exc:
            return f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            if conn is not None and conn is not ctl:
                drop_connection(conn)


async def failure(run: RunState, ctl: asyncpg.Connection, exc: BaseException) -> BaseException:
    """Undo after ``exc`` and return the exception to raise (one sentence, run id included)."""
    interrupted = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
    if not run.recorded:  # nothing of the run was written yet
        for w in run.side_conns:
            drop_connection(w)
        await close_connection(ctl)
        if interrupted:
            return Interrupted("Interrupted before anything was written.")
        refused = postgres_error(exc)
        if refused is not None and not isinstance(exc, ProvisionError):
            return DatabaseRefused(
                f"PostgreSQL refused what provision up needs ({first_line(refused)}); nothing was written."
            )
        return exc
    if isinstance(exc, ProvisionError):
        reason = exc.message.rstrip(".")
    elif isinstance(exc, asyncpg.PostgresError) and not connection_lost(exc):
        reason = f"PostgreSQL refused a row{' of ' + run.table if run.table else ''}: {first_line(exc)}"
    elif isinstance(exc, DB_ERRORS):
        reason = f"the connection to the database was lost ({type(exc).__name__})"
    elif interrupted:
        reason = "interrupted"
    else:
        reason = f"unexpected {type(exc).__name__}: {first_line(exc)}"
    # reuse the control connection only when it is certainly idle and healthy
    healthy = (
        isinstance(exc, asyncpg.PostgresError | ProvisionError)
        and not ctl.is_closed()
        and not ctl.is_in_transaction()
    )
    if not healthy:
        drop_connection(ctl)
    try:
        problem = await asyncio.shield(run.undo(ctl if healthy else None, reason))
    except Exception as undo_error:  # whatever it was, 'provision down' finishes the job
        problem = f"{type(undo_error).__name__}: {first_line(undo_error)}"
    if healthy:
        await close_connection(ctl)
    if problem is None:
        tail = f"run {run.run_id} was rolled back and marked failed"
    else:
        tail = (
            f"run {run.run_id} could not be rolled back ({problem}); 'provision down {run.run_id}' "
            "removes what is left"
        )
    if interrupted:
        return Interrupted(f"Interrupted: {tail}.")
    return ProvisioningFailed(
        f"Provisioning failed ({reason}); {tail}.", run_id=run.run_id, table=run.table or None
    )
