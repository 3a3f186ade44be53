"""The run's passwords: bcrypt on threads while the run is recorded and loaded, and when hashes land.

With parallel streams (and shared passwords) the users are written with placeholders
(``credentials.pending_hashes``) while bcrypt still runs, so hashing overlaps the load;
the real hashes are applied on their own connection once bcrypt is done and the load
has said, through ``PasswordStep.users_committed``, that every user row is committed.
Progress events only inform the display: nothing here waits on one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from ..errors import ProvisioningFailed
from ..generate.passwords import PasswordSet, estimate_hash_seconds, hash_passwords
from ..progress import ProgressEvent
from ..schema.reflect import TablePlan
from ..target.session import UP_SESSION, close_connection, open_connection
from .credentials import apply_hashes, pending_hashes, unique_password_hook
from .load import PieceHook
from .undo import RunState

__all__ = ["PasswordStep", "start_hashing"]


def start_hashing(run: RunState) -> asyncio.Task[PasswordSet]:
    """Start bcrypt on its threads; it runs while the ledger is written and the rows are loaded."""
    settings, prep = run.settings, run.prep
    if settings.unique_passwords:
        est = estimate_hash_seconds(prep.hash_count, settings.bcrypt_cost)
        run.progress(
            ProgressEvent(
                "warning",
                message=(
                    f"--unique-passwords: hashing {prep.hash_count:,} passwords at cost "
                    f"{settings.bcrypt_cost} will take about {est / 60:.1f} minutes"
                ),
            )
        )
    run.phase("hash", count=prep.hash_count, cost=settings.bcrypt_cost)

    async def hash_all() -> PasswordSet:
        started = time.perf_counter()
        result = await hash_passwords(prep.hash_count, settings.bcrypt_cost, progress=run.progress)
        run.phases["hash"] = time.perf_counter() - started
        return result

    return asyncio.create_task(hash_all())


class PasswordStep:
    """How the users get their password hashes, and when the real ones reach the table.

    With parallel streams (and shared passwords) the users are written with placeholders
    while bcrypt still runs; the real hashes are applied on their own connection once
    bcrypt is done and ``users_committed`` was called.  Otherwise bcrypt is awaited
    first and the rows carry the real hashes (per slot, or per user with ``--unique-passwords``).
    """

    def __init__(self, run: RunState, plans: Mapping[str, TablePlan], hashing: asyncio.Task[PasswordSet]) -> None:
        self.run, self.hashing = run, hashing
        self.users = plans["users"]
        self.column = self.users.concept_column("password_hash") or ""
        self.deferred = (
            run.settings.streams > 1
            and not run.settings.unique_passwords
            and self.users.position(self.column) is not None
            and run.prep.counts.users > 0  # no users: nothing would ever be committed
        )
        self.unique: PasswordSet | None = None
        self._users_in = asyncio.Event()
        self._applying: asyncio.Task[PasswordSet] | None = None

    async def slot_hashes(self) -> tuple[str, ...]:
        """What the users' rows are written with, one per password slot."""
        slots = self.run.prep.password_slots
        if self.deferred:
            placeholders = pending_hashes(self.run.run_id, slots)
            self._applying = asyncio.create_task(self._apply(placeholders))
            self.run.tasks.append(self._applying)
            return placeholders
        passwords = await self.hashing
        if self.run.settings.unique_passwords:
            self.unique = passwords
            return ("",) * slots
        return tuple(passwords.hashes[:slots])

    def row_hooks(self) -> dict[str, PieceHook]:
        return {} if self.unique is None else {"users": unique_password_hook(self.users, self.unique.hashes)}

    def users_committed(self) -> None:
        """The load committed every user row: placeholders may now be replaced."""
        self._users_in.set()

    async def passwords(self) -> PasswordSet:
        """The run's passwords, once every user row holds its real hash."""
        return await (self._applying if self._applying is not None else self.hashing)

    async def _apply(self, placeholders: tuple[str, ...]) -> PasswordSet:
        run = self.run
        passwords = await self.hashing
        await self._users_in.wait()
        conn = await open_connection(run.db, UP_SESSION)
        run.side_conns.append(conn)
        try:
            updated = await apply_hashes(conn, self.users, self.column, run.tenant_ids, placeholders, passwords.hashes)
        finally:
            run.side_conns.remove(conn)
            await close_connection(conn)
        if updated != run.prep.counts.users:
            raise ProvisioningFailed(
                f"Only {updated} of {run.prep.counts.users} users of run {run.run_id} got their password hash.",
                run_id=run.run_id,
                table="users",
            )
        return passwords
