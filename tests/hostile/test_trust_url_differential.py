"""The guard decides on exactly the hosts the driver connects to (no parser differential).

For every hostile URL string (a table, then generated ones) one of two things holds:

- the toolkit refuses it (bad input, or the guard), or
- the hosts asyncpg's own parser derives from the keyword arguments the toolkit hands it are
  exactly the hosts the guard checked, and the hosts asyncpg would have derived from the raw
  string name the same addresses (compared through the resolver's numeric parse, so that
  ``127.1`` and ``127.0.0.1`` are one address).

asyncpg's parser is ``asyncpg.connect_utils._parse_connect_dsn_and_args``: the very function
``asyncpg.connect`` calls, the only way to see what it would connect to without connecting.
Everything runs in a fresh network namespace (as in ``test_trust_remote_guard``), so that not
even a DNS query can leave the machine; the end-to-end cases run ``provision up`` there.
"""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

from hostile_support import assert_one_sentence, provision_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HOSTS = "127.0.0.1 localhost\n::1 localhost\n10.20.30.40 staging-db\n127.0.0.1 vm\n"

# (url, PGHOST/PGPORT/PGSERVICE env): hostile forms of where a URL's hosts can come from
TABLE: list[tuple[str, dict[str, str]]] = [
    ("postgresql://postgres@0.0.0.0:5432,@127.0.0.1:5432/DB", {}),
    ("postgresql://postgres@192.0.2.77:5432,@127.0.0.1:5432/DB", {}),
    ("postgresql://postgres@[2001:db8::1]:5432,@127.0.0.1:5432/DB", {}),
    ("postgresql://postgres:ab@cd:SECRET@127.0.0.1:5432/db", {}),
    ("postgresql://a@b@127.0.0.1/db", {}),
    ("postgresql://localhost./db", {}),
    ("postgresql://postgres@localhost./db", {}),
    ("postgresql://postgres@127.0.0.1./db", {}),
    ("postgresql://postgres@vm./db", {}),
    ("postgresql://postgres@vm/db", {}),
    ("postgresql://postgres@127.0.0.1:5432,,10.20.30.40/db", {}),
    ("postgresql://postgres@127.0.0.1,/db", {}),
    ("postgresql://postgres@%31%30.0.0.1/db", {}),
    ("postgresql://postgres@%2Ftmp/db", {}),
    ("postgresql://postgres@%2Ftmp:5433/db", {}),
    ("postgresql://postgres@[::1]:5432/db", {}),
    ("postgresql://postgres@[::ffff:7f00:1]/db", {}),
    ("postgresql://postgres@[::ffff:a00:1]/db", {}),
    ("postgresql://postgres@[::1/db", {}),
    ("postgresql://postgres@::1/db", {}),
    ("postgresql://postgres@0x7f.1/db", {}),
    ("postgresql://postgres@2130706433/db", {}),
    ("postgresql://postgres@127.1/db", {}),
    ("postgresql://postgres@0177.0.0.1/db", {}),
    ("postgresql://postgres@10.1/db", {}),
    ("postgresql://postgres@0/db", {}),
    ("postgresql://postgres@08.0.0.1/db", {}),
    ("postgresql://postgres@/db?host=/tmp", {}),
    ("postgresql://postgres@/db?host=/tmp,10.20.30.40", {}),
    ("postgresql://postgres@/db?host=127.0.0.1,[::1]&port=5432,5433", {}),
    ("postgresql://postgres@127.0.0.1/db?host=10.20.30.40", {}),
    ("postgresql://postgres@/db?host=10.20.30.40&host=127.0.0.1", {}),
    ("postgresql://postgres@/db?hostaddr=10.20.30.40", {}),
    ("postgresql://postgres@/db", {}),
    ("postgresql://postgres@/db", {"PGHOST": "10.20.30.40"}),
    ("postgresql://postgres@/db", {"PGHOST": "/tmp,127.0.0.1"}),
    ("postgresql://postgres@/db", {"PGHOST": "localhost."}),
    ("postgresql://postgres@/db", {"PGHOST": "127.0.0.1", "PGPORT": "5433"}),
    ("postgresql://postgres@127.0.0.1/db", {"PGHOST": "10.20.30.40"}),
    ("postgresql://postgres@/db", {"PGSERVICE": "staging"}),
    ("postgresql://postgres@/db?service=staging", {"PGSERVICEFILE": "{servicefile}"}),
    ("postgresql://postgres@/db", {"PGSERVICE": "staging", "PGSERVICEFILE": "{servicefile}"}),
    ("postgresql://postgres@127.0.0.1/db?sslmode=disable&application_name=x", {}),
    ("postgresql://postgres@127.0.0.1/db?port=5433", {}),
    ("postgresql://postgres@127.0.0.1#@10.20.30.40/db", {}),
    ("postgresql://postgres@127.0.0.1\t/db", {}),
    ("postgresql://postgres@127.0.0.1%00/db", {}),
    ("postgresql://postgres@l\u043ecalhost/db", {}),
    ("postgresql://postgres@127.0.0.1:\uff15\uff14\uff13\uff12/db", {}),
    ("postgres://postgres@localhost:5432/db?target_session_attrs=any", {}),
]
SERVICEFILE = "[staging]\nhost=10.20.30.40\nport=5432\n"

# What runs inside the namespace: for each case, the toolkit's verdict and asyncpg's hosts.
PROBE = r'''
import importlib, json, os, re, socket, sys
from agentic_loadkit.provisioning.target.guard import check_remote_allowed
from agentic_loadkit.provisioning.target.url import parse_database_url
from agentic_loadkit.provisioning.errors import ProvisionError
parse_dsn = importlib.import_module("asyncpg.connect_utils")._parse_connect_dsn_and_args
ARGS = dict(dsn=None, host=None, port=None, user=None, password=None, passfile=None, database=None, ssl=None,
            service=None, servicefile=None, direct_tls=None, server_settings=None, target_session_attrs=None,
            krbsrvname=None, gsslib=None)

def hosts(**kw):
    try:
        addrs, _ = parse_dsn(**{**ARGS, **kw})
    except Exception as exc:
        return "error: " + type(exc).__name__
    return [a if isinstance(a, str) else a[0] for a in addrs]

def numeric(h):
    if h.startswith("/"):  # asyncpg appends the socket file's name to the directory
        return re.sub("/+", "/", h.rsplit("/.s.PGSQL.", 1)[0] + "/" if ".s.PGSQL." in h else h + "/")
    try:
        return socket.getaddrinfo(h, None, flags=socket.AI_NUMERICHOST)[0][4][0]
    except OSError:
        return h

out = []
for url, env in json.loads(sys.stdin.read()):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        try:
            target = parse_database_url(url)
            check_remote_allowed(target)
            verdict = "accepted"
        except ProvisionError as exc:
            verdict = f"refused {exc.exit_code}"
            target = None
        row = {"url": url, "verdict": verdict, "raw": hosts(dsn=url)}
        if target is not None:
            row["checked"] = [h for h, _ in target.hosts]
            row["handed"] = hosts(**target.connect_kwargs())
            row["checked_numeric"] = [numeric(h) for h in row["checked"]]
            row["raw_numeric"] = [numeric(h) for h in row["raw"]] if isinstance(row["raw"], list) else row["raw"]
            row["handed_numeric"] = [numeric(h) for h in row["handed"]] if isinstance(row["handed"], list) else []
            row["again"] = [h for h, _ in parse_database_url(target.asyncpg_url).hosts]
            row["secret_shown"] = "SECRET" in target.masked
        out.append(row)
    finally:
        os.environ.clear()
        os.environ.update(saved)
print(json.dumps(out))
'''


def isolated(tmp_path: Path, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    script = f'mount --bind "{hosts}" /etc/hosts && exec "$@"'
    cmd = ["unshare", "--mount", "--net", "sh", "-c", script, "sh", sys.executable, *args]
    return subprocess.run(cmd, env=provision_env(), input=stdin, capture_output=True, text=True, timeout=300,
                          check=False)


def probe(cases: list[tuple[str, dict[str, str]]], tmp_path: Path) -> list[dict[str, object]]:
    servicefile = tmp_path / "pg_service.conf"
    servicefile.write_text(SERVICEFILE)
    filled = [(u, {k: v.replace("{servicefile}", str(servicefile)) for k, v in e.items()}) for u, e in cases]
    res = isolated(tmp_path, ["-c", PROBE], json.dumps(filled))
    assert res.returncode == 0, res.stderr[-3000:]
    return list(json.loads(res.stdout))


def check_rows(rows: list[dict[str, object]]) -> dict[str, int]:
    tally = {"refused": 0, "accepted": 0}
    for row in rows:
        if row["verdict"] != "accepted":
            tally["refused"] += 1
            continue
        tally["accepted"] += 1
        # by construction: what the driver gets is what was checked, and it survives a round trip
        assert row["handed_numeric"] == row["checked_numeric"], row
        assert row["again"] == row["checked"], row
        # no differential: asyncpg reading the raw string reaches the same addresses
        assert row["raw_numeric"] == row["checked_numeric"], row
        assert not row["secret_shown"], row
    return tally


def test_table_of_hostile_urls(tmp_path: Path) -> None:
    rows = probe(TABLE, tmp_path)
    tally = check_rows(rows)
    verdicts = {r["url"] + json.dumps(e): r["verdict"] for r, (_, e) in zip(rows, TABLE, strict=True)}
    # the issue's reproductions and every remote or ambiguous form are refused
    for url, env in TABLE:
        key = url + json.dumps(env)
        from_env = "@/" in url  # no host in the URL: PGHOST (or a service) decides
        remote = "10.20" in url or "192.0.2" in url or "2001:db8" in url or (
            from_env and ("10.20" in env.get("PGHOST", "") or "PGSERVICE" in env)
        )
        dotted = "localhost." in url + env.get("PGHOST", "")
        if remote or dotted or url.count("@") > 1:
            assert verdicts[key] != "accepted", key
    assert tally["refused"] >= 30 and tally["accepted"] >= 10, tally


# generated URLs: pieces where parsers have disagreed, glued at random
PIECES = ["@", ",", ":", ".", "[", "]", "%40", "%2F", "%2C", "/", "?", "&", "=", "#", "host", "port", "5432",
          "127.0.0.1", "10.0.0.1", "::1", "localhost", "vm", "0x7f", "1", "tmp", "u", "pw", "db", "hostaddr", "%3A",
          "%25", "+", "%20", "sslpassword"]


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=12), min_size=1, max_size=1))
def _generated(batch: list[list[str]]) -> None:  # collected by the test below (one namespace for all)
    GENERATED.extend("postgresql://" + "".join(p) for p in batch)


GENERATED: list[str] = []


def test_generated_hostile_urls(tmp_path: Path) -> None:
    GENERATED.clear()
    _generated()
    extra = ["postgresql://" + "".join(c) for c in (string.ascii_letters[:5], "u@1@2", "u@[::1]:1,@10.0.0.1")]
    urls = sorted(set(GENERATED + extra))
    rows = probe([(u, {}) for u in urls], tmp_path)
    tally = check_rows(rows)
    assert tally["accepted"] + tally["refused"] == len(urls) >= 300


def test_the_issues_urls_end_to_end(tmp_path: Path) -> None:
    """``up`` itself, in the namespace: one sentence, the password never shown, nothing written."""
    for url in [
        "postgresql://postgres@0.0.0.0:5432,@127.0.0.1:5432/DB",
        "postgresql://postgres:ab@cd:SECRET@127.0.0.1:5432/db",
        "postgresql://postgres@localhost./db",
        "postgresql://postgres@127.0.0.1./db",
        "postgresql://postgres@vm./db",
        "postgres:SECRET@127.0.0.1:5432/db",
    ]:
        state = tmp_path / "state"
        for debug in ([], ["--debug"]):
            res = isolated(tmp_path, ["-m", "agentic_loadkit.cli", *debug, "--state-dir", str(state), "up",
                                      "--database-url", url, "--bcrypt-cost", "4"])
            assert res.returncode == 2, res.stderr
            assert "SECRET" not in res.stdout + res.stderr, res.stderr  # also not in a --debug traceback
            if not debug:
                assert_one_sentence(res.stderr, res.returncode, 2, "The database URL", alone=True)
            assert not state.exists()
