"""Password hashing: real bcrypt on threads, progress, cancellation, and no ``__main__`` guard needed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import bcrypt
import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.provisioning.generate import passwords
from agentic_loadkit.provisioning.generate.passwords import PASSWORD_LENGTH, hash_passwords
from agentic_loadkit.provisioning.progress import ProgressEvent


def _bcrypt_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("provision-bcrypt-")]


def test_threaded_hashes_verify_and_report_progress() -> None:
    events: list[ProgressEvent] = []
    result = asyncio.run(hash_passwords(5, 7, progress=events.append))
    assert len(result) == 5 and len(set(result.passwords)) == 5
    assert all(len(p) == PASSWORD_LENGTH and p.isalnum() for p in result.passwords)
    for password, hashed in zip(result.passwords, result.hashes, strict=True):
        assert hashed.startswith("$2b$07$")
        assert bcrypt.checkpw(password.encode(), hashed.encode())
    assert events[0].kind == "table_start" and events[0].total == 5
    assert sum(e.count or 0 for e in events if e.kind == "rows") == 5
    assert events[-1].kind == "table_done"
    assert "$2b$" not in repr(result) and result.passwords[0] not in repr(result)
    for t in _bcrypt_threads():
        t.join(timeout=30)
    assert not _bcrypt_threads()


def test_cancelling_stops_the_threads_after_the_hash_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = passwords.hash_password

    def counting(password: str, cost: int = 12) -> str:
        calls.append(password)
        return real(password, cost)

    monkeypatch.setattr(passwords, "hash_password", counting)
    # the code hashes on one thread per core (os.cpu_count()); 32 passwords per thread would take
    # about a second at cost 9, so a run cancelled after its first hash must stop far short of that
    threads = os.cpu_count() or 1
    count = 32 * threads

    async def go() -> None:
        first = asyncio.Event()

        def progress(event: ProgressEvent) -> None:
            if event.kind == "rows":
                first.set()

        task = asyncio.create_task(hash_passwords(count, 9, progress=progress))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    for t in _bcrypt_threads():
        t.join(timeout=60)
    assert not _bcrypt_threads()
    # each thread finishes the hash it is on and takes no more: far fewer than ``count`` were made
    assert 1 <= len(calls) <= 4 * threads, (len(calls), threads)


def test_bad_options_are_refused_before_hashing() -> None:
    with pytest.raises(InputError, match="bcrypt cost"):
        asyncio.run(hash_passwords(3, 3))
    with pytest.raises(InputError, match="password count"):
        asyncio.run(hash_passwords(0, 7))


def test_a_script_without_a_main_guard_can_hash(tmp_path: Path) -> None:
    """Worker processes started with 'spawn' re-ran such a script and crashed; threads do not."""
    script = tmp_path / "no_guard.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            from agentic_loadkit.provisioning.generate.passwords import hash_passwords
            result = asyncio.run(hash_passwords(4, 7))
            print("hashed", len(result))
            """
        )
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hashed 4" and "Traceback" not in proc.stderr
