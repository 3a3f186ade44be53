"""The remote-target guard cannot be bypassed: host aliases of non-loopback addresses, numeric IPv4
spellings, IPv6 forms, several hosts, ``?host=``/``?hostaddr=``/``?service=`` query forms, and a URL
without a host whose real host comes from ``PGHOST``/``PGSERVICE`` (what asyncpg would connect to).

No packet may leave the machine even if the guard were broken: everything that could resolve a
name or connect runs in a subprocess inside a fresh network namespace (``unshare -n``: not even a
loopback interface is up, so a DNS query or a connection has nowhere to go), with its own
``/etc/hosts`` bind-mounted in a private mount namespace to define real host aliases.

Decision for numeric spellings: ``2130706433``, ``0x7f000001``, ``0177.0.0.1`` and ``127.1`` ARE
loopback (libpq and asyncpg resolve them with ``getaddrinfo``, which parses them as 127.0.0.1);
the same spellings of a 10/8 address are not, and neither is ``0.0.0.0``/``0``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_support import assert_one_sentence, provision_env

HOSTS = """127.0.0.1 localhost
::1 localhost
10.20.30.40 staging-db staging-db.corp
127.0.0.1 looks-local
::1 looks-local-v6
127.0.0.1 mixed
10.0.0.9 mixed
"""

DECISIONS = {
    # numeric spellings of 127.0.0.1 (what getaddrinfo, hence libpq and asyncpg, connect to)
    "2130706433": True,
    "0x7f000001": True,
    "0177.0.0.1": True,
    "127.1": True,
    "0x7f.0.0.1": True,
    # the same spellings of 10.0.0.1, and the unspecified address
    "167772161": False,
    "0x0a000001": False,
    "012.0.0.1": False,
    "10.1": False,
    "0": False,
    "0.0.0.0": False,
    "0x0": False,
    # IPv6 forms
    "::1": True,
    "[::1]": True,
    "0:0:0:0:0:0:0:1": True,
    "::ffff:127.0.0.1": True,
    "::ffff:7f00:1": True,
    "[::ffff:10.0.0.1]": False,
    "::ffff:a00:1": False,
    "::": False,
    "::127.0.0.1": False,  # IPv4-compatible (deprecated): not loopback
    "64:ff9b::7f00:1": False,  # NAT64 of 127.0.0.1 goes through a gateway
    "fe80::1%lo": False,
    # names: aliases defined in /etc/hosts, names that only look local, reserved names
    "localhost": True,
    "LOCALHOST.": False,  # a DNS name (the dot is kept): unresolvable here, so remote
    "looks-local": True,
    "looks-local-v6": True,
    "staging-db": False,
    "staging-db.corp": False,
    "mixed": False,  # one local and one remote address: not certainly this machine
    "localhost.invalid": False,
    "127.0.0.1.invalid": False,
    "127.0.0.1.nip.io": False,  # resolves to 127.0.0.1 on the internet; unresolvable here: refused
    "4294967296": False,  # not a number glibc parses: a name, unresolvable here
    "": False,
}


def isolated(
    code: str, tmp_path: Path, *, env: dict[str, str] | None = None, argv: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run Python in new mount + network namespaces, with our /etc/hosts."""
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    script = f'mount --bind "{hosts}" /etc/hosts && exec "$@"'
    cmd = ["unshare", "--mount", "--net", "sh", "-c", script, "sh", sys.executable]
    cmd += ["-c", code] if argv is None else argv
    return subprocess.run(cmd, env=provision_env(env), capture_output=True, text=True, timeout=120, check=False)


def test_the_namespace_really_has_no_network(tmp_path: Path) -> None:
    res = isolated(
        "import socket\n"
        "s = socket.socket()\n"
        "s.settimeout(5)\n"
        "try:\n    s.connect(('10.20.30.40', 5432))\nexcept OSError as e:\n    print(type(e).__name__, e.errno)\n",
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[0] in ("OSError", "ConnectionRefusedError") and "101" in res.stdout  # ENETUNREACH


def test_loopback_decisions(tmp_path: Path) -> None:
    code = (
        "import json, sys\n"
        "from agentic_loadkit.provisioning.target.guard import is_loopback_host\n"
        f"print(json.dumps({{h: is_loopback_host(h) for h in {list(DECISIONS)!r}}}))\n"
    )
    res = isolated(code, tmp_path)
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    wrong = {h: got[h] for h in DECISIONS if got[h] is not DECISIONS[h]}
    assert wrong == {}, wrong


PROVISION = [sys.executable, "-m", "agentic_loadkit.cli"]
REFUSED = [
    ("postgresql://loader:s3cret-pw@staging-db:5432/agentic_db", {}, "staging-db"),
    ("postgresql://loader:s3cret-pw@staging-db.corp/agentic_db", {}, "staging-db.corp"),
    ("postgresql://loader:s3cret-pw@mixed/agentic_db", {}, "mixed"),
    ("postgresql://loader:s3cret-pw@db.staging.invalid/agentic_db", {}, "db.staging.invalid"),
    ("postgresql://loader:s3cret-pw@[::ffff:10.20.30.40]:5432/agentic_db", {}, "::ffff:10.20.30.40"),
    ("postgresql://loader:s3cret-pw@167772161/agentic_db", {}, "167772161"),
    ("postgresql://loader:s3cret-pw@127.0.0.1:5432,staging-db:5432/agentic_db", {}, "staging-db"),
    ("postgresql://loader:s3cret-pw@[::1]:5432,[2001:db8::5]:5432/agentic_db", {}, "2001:db8::5"),
    ("postgresql://loader:s3cret-pw@/agentic_db?host=/tmp,staging-db", {}, "staging-db"),
    ("postgresql://loader:s3cret-pw@/agentic_db", {"PGHOST": "staging-db"}, "staging-db"),
    ("postgresql://loader:s3cret-pw@/agentic_db?port=5432", {"PGHOST": "10.20.30.40"}, "10.20.30.40"),
    ("postgresql://loader:s3cret-pw@/agentic_db", {"PGSERVICE": "staging"}, "service"),
]


# forms on which libpq and asyncpg disagree, or that the driver would not honour: bad input (exit 2)
# before the guard; before the strict parse they reached the guard (exit 4) as several host lists
AMBIGUOUS = [
    ("postgresql://loader:s3cret-pw@127.0.0.1/agentic_db?host=staging-db", "hosts both"),
    ("postgresql://loader:s3cret-pw@localhost/agentic_db?hostaddr=10.20.30.40", "hostaddr"),
    ("postgresql://loader:s3cret-pw@/agentic_db?service=staging", "service"),
]


@pytest.mark.parametrize(("url", "needle"), AMBIGUOUS, ids=[a[1] for a in AMBIGUOUS])
def test_ambiguous_targets_are_bad_input(url: str, needle: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    res = isolated(
        "", tmp_path,
        argv=["-m", "agentic_loadkit.cli", "--state-dir", str(state), "up", "--database-url", url,
              "--bcrypt-cost", "4"],
    )
    assert_one_sentence(res.stderr, res.returncode, 2, needle, alone=True)
    assert "s3cret-pw" not in res.stdout + res.stderr and not state.exists()


@pytest.mark.parametrize(("url", "env", "host"), REFUSED, ids=[f"{i}-{r[2]}" for i, r in enumerate(REFUSED)])
def test_remote_targets_are_refused_end_to_end(url: str, env: dict[str, str], host: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    res = isolated(
        "", tmp_path, env=env,
        argv=["-m", "agentic_loadkit.cli", "--state-dir", str(state), "up", "--database-url", url,
              "--bcrypt-cost", "4"],
    )
    assert_one_sentence(res.stderr, res.returncode, 4, host, "--allow-remote", alone=True)
    assert "s3cret-pw" not in res.stdout + res.stderr and not state.exists()


def test_allowed_remote_targets_are_tried_only_when_asked(tmp_path: Path) -> None:
    """With --allow-remote the guard steps aside; inside the namespace the attempt goes nowhere (exit 5)."""
    url = "postgresql://loader:s3cret-pw@staging-db:5432/agentic_db"
    res = isolated(
        "", tmp_path,
        argv=["-m", "agentic_loadkit.cli", "--state-dir", str(tmp_path / "st"), "runs", "--database-url", url,
              "--allow-remote"],
    )
    assert_one_sentence(res.stderr, res.returncode, 5, "staging-db", alone=True)
    assert "s3cret-pw" not in res.stdout + res.stderr
