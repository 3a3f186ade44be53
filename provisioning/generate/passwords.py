"""Passwords for the provisioned users: random per run, hashed like the platform does.

The platform stores passlib-style bcrypt hashes (``$2b$12$...``).  We use the ``bcrypt``
package directly (passlib 1.7.4 breaks with bcrypt 5).  bcrypt is slow by design
(≈ 0.3 s per hash per core at cost 12 here), so a run hashes a small set of distinct
passwords (4 by default) once, on one thread per core, and gives each user one
of them; ``unique=True`` hashes one per user for those who need it.

Passwords come from ``secrets`` and are never derived from the run's seed: the seed is
printed and stored, and must not reveal logins.  The plaintexts live only in memory and
in the run's 0600 credentials file.
"""

from __future__ import annotations

import math
import os
import queue
import secrets
import string
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import bcrypt

from ..errors import InputError
from ..progress import ProgressCallback, ProgressEvent, null_progress

__all__ = [
    "DEFAULT_BCRYPT_COST",
    "DEFAULT_PASSWORD_COUNT",
    "HASH_THREAD_PREFIX",
    "MAX_BCRYPT_COST",
    "MAX_PASSWORD_COUNT",
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
# Why 4: a distinct password costs ≈ 0.31 s of CPU at cost 12 here, taken from the load it
# runs beside, and changes nothing the platform does under load (a login verifies one hash
# at full cost, however many distinct ones exist); 16 of them were a third of the CPU of
# ``up --scale large`` (measured, bench/provision_bench.py).
DEFAULT_PASSWORD_COUNT = 4
HASH_THREAD_PREFIX = "provision-bcrypt-"  # the CLI's exit looks for these threads
MAX_PASSWORD_COUNT = 1024  # distinct shared passwords; more buys nothing (see --unique-passwords)
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
    if count > MAX_PASSWORD_COUNT:
        raise InputError(
            f"The password count {count:_} is above the limit of {MAX_PASSWORD_COUNT:_}; "
            "for one password per user use --unique-passwords."
        )


def generate_passwords(count: int) -> list[str]:
    """``count`` distinct random passwords of ``PASSWORD_LENGTH`` letters and digits."""
    out: set[str] = set()
    while len(out) < count:
        out.add("".join(secrets.choice(_ALPHABET) for _ in range(PASSWORD_LENGTH)))
    return sorted(out, key=lambda _: secrets.randbits(32))


def hash_password(password: str, cost: int = DEFAULT_BCRYPT_COST) -> str:
    """One ``$2b$`` hash (``bcrypt`` releases the GIL while it works, so threads run in parallel)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost, prefix=b"2b")).decode()


def _hash_chunk(passwords: Sequence[str], cost: int) -> list[str]:
    return [hash_password(p, cost) for p in passwords]


def estimate_hash_seconds(count: int, cost: int, workers: int | None = None) -> float:
    """Rough wall time to hash ``count`` passwords (for the --unique-passwords warning)."""
    n = workers or os.cpu_count() or 1
    return SECONDS_PER_HASH_AT_12 * (2 ** (cost - 12)) * math.ceil(count / n)


def _worker_count(count: int) -> int:
    return max(1, min(os.cpu_count() or 1, count))


async def _hash_in_threads(passwords: Sequence[str], cost: int, progress: ProgressCallback) -> list[str]:
    """Hash on one daemon thread per core; the event loop stays free for the load meanwhile.

    Why threads, not processes: ``bcrypt`` releases the GIL, so threads hash in parallel
    (measured: 16 hashes at cost 12 in 2.61 s on 2 threads, 2.84 s on 2 spawned processes,
    which also cost 0.45 s of CPU to start).  Worker processes also re-import the caller's
    ``__main__``, which breaks a script without an ``if __name__ == "__main__"`` guard.
    Daemon threads, because a hash cannot be interrupted: on cancellation (Ctrl-C) the
    threads stop taking work and the process exits without waiting for the hash in flight.
    """
    import asyncio  # here, so that the CLI's --help, which reads this module's defaults, needs no event loop

    loop = asyncio.get_running_loop()
    results: list[str] = [""] * len(passwords)
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(passwords)):
        todo.put(i)
    stop = threading.Event()
    done: asyncio.Queue[int | BaseException] = asyncio.Queue()

    def report(item: int | BaseException) -> bool:
        try:
            loop.call_soon_threadsafe(done.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody waits any more
            return False
        return True

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results[i] = hash_password(passwords[i], cost)
            except BaseException as exc:  # handed to the awaiting coroutine
                report(exc)
                return
            if not report(i):
                return

    for k in range(_worker_count(len(passwords))):
        threading.Thread(target=work, name=f"{HASH_THREAD_PREFIX}{k}", daemon=True).start()
    try:
        for _ in range(len(passwords)):
            item = await done.get()
            if isinstance(item, BaseException):
                raise item
            progress(ProgressEvent("rows", table="passwords", count=1))
    finally:
        stop.set()
    return results


async def hash_passwords(
    count: int,
    cost: int = DEFAULT_BCRYPT_COST,
    *,
    progress: ProgressCallback = null_progress,
) -> PasswordSet:
    """Make ``count`` random passwords and hash them on one thread per core.

    Small costs (the tests' cost 4) hash inline: starting threads would cost more.
    Cancellation (Ctrl-C) stops the threads after the hash each is working on.
    """
    validate_password_options(count, cost)
    passwords = generate_passwords(count)
    progress(ProgressEvent("table_start", table="passwords", total=count))
    if cost <= 6:
        hashes = _hash_chunk(passwords, cost)
        progress(ProgressEvent("rows", table="passwords", count=count))
    else:
        hashes = await _hash_in_threads(passwords, cost, progress)
    progress(ProgressEvent("table_done", table="passwords", count=count))
    return PasswordSet(tuple(passwords), tuple(hashes), cost)
