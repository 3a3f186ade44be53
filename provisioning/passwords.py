"""Passwords for the provisioned users: random per run, hashed like the platform does.

The platform stores passlib-style bcrypt hashes (``$2b$12$...``).  We use the ``bcrypt``
package directly (passlib 1.7.4 breaks with bcrypt 5).  bcrypt is slow by design
(≈ 0.3 s per hash per core at cost 12 here), so a run hashes a small set of distinct
passwords (16 by default) once, in parallel worker processes, and gives each user one
of them; ``unique=True`` hashes one per user for those who need it.

Passwords come from ``secrets`` and are never derived from the run's seed: the seed is
printed and stored, and must not reveal logins.  The plaintexts live only in memory and
in the run's 0600 credentials file.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
import secrets
import signal
import string
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field

import bcrypt

from .errors import InputError
from .progress import ProgressCallback, ProgressEvent, null_progress

__all__ = [
    "DEFAULT_BCRYPT_COST",
    "DEFAULT_PASSWORD_COUNT",
    "MAX_BCRYPT_COST",
    "MIN_BCRYPT_COST",
    "PASSWORD_LENGTH",
    "PasswordSet",
    "estimate_hash_seconds",
    "generate_passwords",
    "hash_password",
    "hash_passwords",
    "validate_password_options",
]

DEFAULT_BCRYPT_COST = 12
DEFAULT_PASSWORD_COUNT = 16
MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 31
PASSWORD_LENGTH = 20
SECONDS_PER_HASH_AT_12 = 0.3  # measured on the 2-core reference machine; only used for the warning
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class PasswordSet:
    """Plaintexts and their hashes, index-aligned. ``repr`` never shows either."""

    passwords: tuple[str, ...] = field(repr=False)
    hashes: tuple[str, ...] = field(repr=False)
    cost: int = DEFAULT_BCRYPT_COST

    def __len__(self) -> int:
        return len(self.passwords)

    def __repr__(self) -> str:
        return f"PasswordSet(<{len(self.passwords)} passwords>, cost={self.cost})"


def validate_password_options(count: int, cost: int) -> None:
    if isinstance(cost, bool) or not isinstance(cost, int) or not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        raise InputError(
            f"The bcrypt cost must be an integer from {MIN_BCRYPT_COST} to {MAX_BCRYPT_COST}, not {cost!r}."
        )
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise InputError(f"The password count must be a positive integer, not {count!r}.")


def generate_passwords(count: int) -> list[str]:
    """``count`` distinct random passwords of ``PASSWORD_LENGTH`` letters and digits."""
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH)))
    return sorted(out, key=lambda _: secrets.randbits(32))


def hash_password(password: str, cost: int = DEFAULT_BCRYPT_COST) -> str:
    """One ``$2b$`` hash (a module-level function so worker processes can run it)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2b")).decode()


def _hash_chunk(passwords: Sequence[str], cost: int) -> list[str]:
    return [hash_password(p, cost) for p in passwords]


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole process group; the parent handles it and shuts the pool down.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def estimate_hash_seconds(count: int, cost: int, workers: int | None = None) -> float:
    """Rough wall time to hash ``count`` passwords (for the --unique-passwords warning)."""
    n = workers or os.cpu_count() or 1
    return SECONDS_PER_HASH_AT_12 * (2 ** (cost - 12)) * math.ceil(count / n)


def _worker_count(count: int) -> int:
    return max(1, min(os.cpu_count() or 1, count))


async def hash_passwords(
    count: int,
    cost: int = DEFAULT_BCRYPT_COST,
    *,
    progress: ProgressCallback = null_progress,
    executor: Executor | None = None,
) -> PasswordSet:
    """Make ``count`` random passwords and hash them in parallel processes.

    Small costs (the tests' cost 4) hash in-process: starting workers would cost more.
    Cancellation (Ctrl-C) drops the queued work and leaves the pool without waiting.
    """
    validate_password_options(count, cost)
    passwords = generate_passwords(count)
    progress(ProgressEvent("table_start", table="passwords", total=count))
    if cost <= 6 and executor is None:
        hashes = _hash_chunk(passwords, cost)
        progress(ProgressEvent("rows", table="passwords", count=count))
        progress(ProgressEvent("table_done", table="passwords", count=count))
        return PasswordSet(tuple(passwords), tuple(hashes), cost)
    workers = _worker_count(count)
    own = executor is None
    pool = executor or ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
    )
    loop = asyncio.get_running_loop()
    # chunks small enough to spread over the workers, large enough to keep IPC cheap
    size = max(1, min(64, math.ceil(count / (workers * 4))))
    chunks = [passwords[i : i + size] for i in range(0, count, size)]
    futures = [loop.run_in_executor(pool, _hash_chunk, chunk, cost) for chunk in chunks]
    try:
        for next_done in asyncio.as_completed(futures):
            hashed = await next_done
            progress(ProgressEvent("rows", table="passwords", count=len(hashed)))
        hashes = [h for f in futures for h in f.result()]
    except BaseException:
        for f in futures:
            f.cancel()
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
        raise
    if own:
        pool.shutdown(wait=True)
    progress(ProgressEvent("table_done", table="passwords", count=count))
    return PasswordSet(tuple(passwords), tuple(hashes), cost)
