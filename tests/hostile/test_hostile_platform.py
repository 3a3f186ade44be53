"""A hostile platform: real Locust runs against a real HTTP server on 127.0.0.1 that answers badly.

Every answer below comes over a real socket from ``hostile_http.HostilePlatform``, written
as a broken or malicious server would write it.  The load generator must count each as a
failure with a reason, raise nothing out of its users (exit code 2 would mean "the
scenario code is broken"), stay within bounded memory and time, never follow a redirect,
never send a token it should not, and let the gate give the verdict (3 when everything
failed).  Each run is a few seconds; several answers are tried in one run, one per
endpoint (or one per account, for logins).
"""

from __future__ import annotations

import gzip
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_http import (
    LOGIN,
    Behaviour,
    HostilePlatform,
    Request,
    answer,
    deflate_bomb,
    drip,
    gzip_bomb,
    json_answer,
    token_answer,
)
from locust_argv import locust_argv
from locust_support import LENIENT, LocustRun, gate_line, locust_env, write_pool
from polltools import wait_until

AGENTS = ("GET", "/api/v1/agents")
AGENT = ("GET", "/api/v1/agents/*")
CREATE = ("POST", "/api/v1/agents")
WORKFLOWS = ("GET", "/api/v1/workflows/workflows")
COLLECTIONS = ("GET", "/api/v1/rag/collections")
MCP = ("GET", "/api/v1/mcp/servers")
HEALTH = ("GET", "/health")
GOOD_LOGIN = token_answer("good-token.abc_123")
NESTED = b"[" * 100_000 + b"]" * 100_000


def _high_water_mib(pid: int) -> float | None:
    """The process's peak resident memory so far (``VmHWM``, per address space: reset by exec), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_measured(args: list[str], cwd: Path, results: Path, timeout: float = 60) -> tuple[LocustRun, float]:
    """A headless Locust run; returns its outcome and its peak resident memory in MiB (sampled ``VmHWM``)."""
    argv = locust_argv(*args, results=results)
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=locust_env())
    out: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, s=s: out.__setitem__(k, s.read()), daemon=True)
        for k, s in (("out", proc.stdout), ("err", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    peak = 0.0

    def sampled_until_the_end() -> bool:
        nonlocal peak
        peak = max(peak, _high_water_mib(proc.pid) or 0.0)  # monotonic: the last sample is (nearly) the peak
        return proc.poll() is not None

    try:
        wait_until(sampled_until_the_end, timeout, 0.05, what="Locust ended")
    except AssertionError:
        proc.kill()
        raise
    for reader in readers:
        reader.join(10)
    doc = json.loads(results.read_text()) if results.exists() else None
    run = LocustRun(proc.returncode, out.get("out", b"").decode(errors="replace"),
                    out.get("err", b"").decode(errors="replace"), doc)  # fmt: skip
    assert peak > 0, "the Locust process's memory could not be read"
    return run, peak


def locust(platform: HostilePlatform, pool: Path, tmp_path: Path, *, users: int, seconds: int, extra: tuple = ()):
    args = ["--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", platform.url,
            "--credentials", str(pool), "--wait-time", "0-0.05", *extra]  # fmt: skip
    return run_measured(args, tmp_path, tmp_path / "results.json")


def failures_by_endpoint(run: LocustRun) -> dict[tuple[str, str], tuple[int, int]]:
    assert run.results is not None, run.output[-3000:]
    return {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in run.results["endpoints"]}


def errors(run: LocustRun) -> list[str]:
    assert run.results is not None
    return [e["error"] for e in run.results["errors"]]


def reasons_of(run: LocustRun, method: str, name: str) -> list[str]:
    return [e for e in errors(run) if e.startswith(f"{method} {name}:")]


def assert_no_exception(run: LocustRun) -> None:
    assert run.code != 2, run.output[-3000:]
    assert "Traceback" not in run.output and "RecursionError" not in run.output, run.output[-3000:]
    assert "exceptions were raised in the scenario code" not in run.stdout


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    return write_pool(tmp_path / "pool", 10)


@pytest.fixture
def platforms() -> Iterator[list[HostilePlatform]]:
    made: list[HostilePlatform] = []
    yield made
    for platform in made:
        platform.stop()


def serve(made: list[HostilePlatform], routes: dict[tuple[str, str], Behaviour]) -> HostilePlatform:
    platform = HostilePlatform(routes)
    made.append(platform)
    return platform


def _raw(text: str) -> Behaviour:
    def write(_req: Request, sock) -> bool:  # type: ignore[no-untyped-def]
        sock.sendall(text.encode("latin-1"))
        return False

    return write


def test_broken_bodies_are_failures_with_reasons_and_memory_stays_bounded(
    pool: Path, platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    platform = serve(platforms, {
        LOGIN: GOOD_LOGIN,
        AGENTS: answer(200, NESTED),  # nested 100,000 deep: RecursionError in Python's parser
        AGENT: gzip_bomb(256 * 1024 * 1024),  # 256 KiB of gzip that inflates to 256 MiB
        CREATE: _raw("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                     '{"id": "'),  # a Content-Length that lies, then the connection closes
        WORKFLOWS: _raw("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                        '64\r\n{"workflows": ['),  # a chunk announced at 100 bytes, cut off after 15
        COLLECTIONS: answer(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                            {"Content-Type": "text/html"}),
        MCP: answer(200, b"OK", {"Content-Type": "text/plain"}),  # a 200 that is not JSON
        HEALTH: answer(200, b"\x1b\x00\x00garbage", {"Content-Encoding": "br"}),  # an encoding nobody asked for
    })  # fmt: skip
    run, rss_mib = locust(platform, pool, tmp_path, users=4, seconds=5, extra=("--pool-exhausted", "reuse"))
    assert_no_exception(run)
    assert run.code == 3, run.output[-3000:]  # everything failed: the gate says so
    assert gate_line(run.stdout).startswith("Gate: BREACH") and gate_line(run.stdout).endswith("(exit code 3).")
    stats = failures_by_endpoint(run)
    expected = {
        AGENTS: "with a body that is not JSON",
        ("GET", "/api/v1/agents/{id}"): "with a body over 8 MiB, not read further",
        CREATE: "whose body broke off",
        WORKFLOWS: "whose body broke off",
        COLLECTIONS: "HTTP 502",
        MCP: "HTTP 200 with a body that is not JSON",
        HEALTH: "with Content-Encoding 'br', which was not asked for",
    }
    for (method, name), reason in expected.items():
        requests, failed = stats[(method, name)]
        assert requests > 0 and failed == requests, (method, name, stats)
        found = reasons_of(run, method, name)
        assert found and all(reason in r for r in found), (method, name, found)
    assert rss_mib < 200, f"Locust peaked at {rss_mib:.0f} MiB: a body was not capped"


def test_deflate_bomb_and_a_huge_body_without_compression_are_capped(
    pool: Path, platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    platform = serve(platforms, {
        LOGIN: GOOD_LOGIN,
        AGENTS: deflate_bomb(256 * 1024 * 1024),
        WORKFLOWS: answer(200, b'{"workflows": [], "pad": "' + b"x" * (32 * 1024 * 1024) + b'"}'),
        COLLECTIONS: answer(200, b'{"collections": []}', {"Content-Encoding": "gzip"}),  # says gzip, is not
        MCP: answer(200, gzip.compress(b'{"mcp_servers": []}')[:-8], {"Content-Encoding": "gzip"}),  # no trailer
    })  # fmt: skip
    run, rss_mib = locust(platform, pool, tmp_path, users=3, seconds=4)
    assert_no_exception(run)
    expected = {
        AGENTS: "with a body over 8 MiB",
        WORKFLOWS: "with a body over 8 MiB",
        COLLECTIONS: "with a body that is not valid gzip",
        MCP: "with a truncated gzip body",
    }
    stats = failures_by_endpoint(run)
    for (method, name), reason in expected.items():
        requests, failed = stats[(method, name)]
        assert requests > 0 and failed == requests, (method, name, stats)
        assert all(reason in r for r in reasons_of(run, method, name)), reasons_of(run, method, name)
    assert rss_mib < 200, f"Locust peaked at {rss_mib:.0f} MiB: a body was not capped"


def test_slow_and_dripping_answers_are_timeouts(platforms: list[HostilePlatform], tmp_path: Path) -> None:
    def late(req: Request, sock) -> bool:  # type: ignore[no-untyped-def]
        time.sleep(3)
        return json_answer({"agents": []})(req, sock)

    def interim_forever(_req: Request, sock) -> bool:  # type: ignore[no-untyped-def]
        for _ in range(100):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.05)
        return False

    ok = b'{"collections": []}'
    platform = serve(platforms, {
        LOGIN: GOOD_LOGIN,
        AGENTS: late,  # the whole answer 3 s late
        WORKFLOWS: drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 0.1),
        COLLECTIONS: drip(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ok), ok), 0.1),
        MCP: interim_forever,  # interim answers, never a final one
    })  # fmt: skip
    # every answer takes >= 1 s, so only many users give the lightest task of the mix (2 of 34) requests
    many = write_pool(tmp_path / "many", 30)
    run, _ = locust(platform, many, tmp_path, users=30, seconds=6, extra=("--request-timeout", "1", *LENIENT))
    assert_no_exception(run)
    stats = failures_by_endpoint(run)
    for method, name in (AGENTS, WORKFLOWS, COLLECTIONS, MCP):
        requests, failed = stats[(method, name)]
        assert requests > 0 and failed == requests, (method, name, stats)
        found = reasons_of(run, method, name)
        assert found and all("timed out: no complete answer within 1 s (--request-timeout)" in r for r in found), found


def test_logins_that_answer_badly_are_failed_logins_and_no_token_is_misused(
    platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    elsewhere = serve(platforms, {})  # another origin: must never see a single request
    login_answers: dict[str, Behaviour] = {
        "user0@hostile.test": token_answer("abc\r\nX-Injected: yes"),
        "user1@hostile.test": answer(307, b"", {"Location": f"{elsewhere.url}/api/v1/auth/login"}),
        "user2@hostile.test": answer(302, b"", {"Location": "/api/v1/auth/login-elsewhere"}),
        "user3@hostile.test": token_answer(""),
        "user4@hostile.test": token_answer("two words"),
        "user5@hostile.test": token_answer("x" * 100_000),
        "user6@hostile.test": answer(200, b"<html>Welcome</html>", {"Content-Type": "text/html"}),
        "user7@hostile.test": answer(200, NESTED),
        "user8@hostile.test": token_answer(12345),
        "user9@hostile.test": answer(308, b"", {"Location": f"{elsewhere.url}/steal"}),
    }

    def login(req: Request, sock) -> bool:  # type: ignore[no-untyped-def]
        return login_answers[req.form["username"]](req, sock)

    platform = serve(platforms, {LOGIN: login})
    pool = write_pool(tmp_path / "pool", len(login_answers))
    run, _ = locust(platform, pool, tmp_path, users=len(login_answers), seconds=4)
    assert_no_exception(run)
    assert run.code == 3, run.output[-3000:]  # logins failed: the gate says so
    assert elsewhere.requests == {}  # the credentials never went to another origin
    assert platform.tokens == {}  # no token was ever sent ...
    tokenless = {LOGIN, HEALTH, ("GET", "/metrics"), *(("GET", p) for p in ("/v1/openapi.json", "/openapi.json",
                                                                          "/api/v1/openapi.json"))}
    assert set(platform.requests) <= tokenless, platform.requests  # ... nor any call that needs one
    assert set(platform.logins) == set(login_answers)
    reasons = [e for e in errors(run) if "/api/v1/auth/login" in e]
    text = "\n".join(reasons)
    for needle in (
        "holds characters a bearer token may not carry",  # CRLF, a space
        "redirect to another origin (http://127.0.0.1:",  # 307, 308
        "redirect to /api/v1/auth/login-elsewhere on the same origin, not followed",
        "is missing or empty",
        "is longer than 16384 characters",
        "login answered 200 with a body that is not JSON",  # HTML, nested too deep
        "credentials go only to --host",
    ):
        assert needle in text, (needle, text)
    assert "X-Injected" not in run.output
    assert run.results is not None
    logins = [e for e in run.results["endpoints"] if e["name"].startswith("/api/v1/auth/login")]
    assert sum(e["requests"] for e in logins) == sum(e["failures"] for e in logins) > 0


def test_a_platform_refusing_its_own_tokens_gets_logins_with_back_off(
    platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    refused = json_answer({"detail": "Not authenticated"}, 401)
    platform = serve(platforms, {LOGIN: GOOD_LOGIN, AGENTS: refused, AGENT: refused, CREATE: refused,
                                 WORKFLOWS: refused, COLLECTIONS: refused, MCP: refused})  # fmt: skip
    pool = write_pool(tmp_path / "pool", 3)
    run, _ = locust(platform, pool, tmp_path, users=3, seconds=6)
    assert_no_exception(run)
    assert run.code == 3, run.output[-3000:]
    # back-off 1 s, 2 s, 4 s: at most 4 logins each in 6 s (without back-off: one or two per task, hundreds)
    assert set(platform.logins) == {f"user{i}@hostile.test" for i in range(3)}
    assert max(platform.logins.values()) <= 4, platform.logins
    assert any("refuses its own tokens); logins back off" in e for e in errors(run)), errors(run)


def test_a_credentials_field_over_128_kib_is_one_sentence_and_exit_12(tmp_path: Path) -> None:
    pool = write_pool(tmp_path / "pool", 3, field_size=200_000)
    proc = subprocess.run(
        locust_argv("--headless", "-u", "1", "-t", "2s", "--host", "http://127.0.0.1:9", "--credentials", str(pool)),
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=locust_env(),
    )  # fmt: skip
    assert proc.returncode == 12, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and lines[0].endswith(".") and "cannot be read as CSV" in lines[0], proc.stderr[-2000:]
    assert "pw-hostile-1" not in proc.stderr + proc.stdout


def test_the_gate_line_names_the_exit_code_the_process_returns(
    pool: Path, platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    platform = serve(platforms, {LOGIN: GOOD_LOGIN, AGENTS: json_answer({"agents": []})})
    run, _ = locust(platform, pool, tmp_path, users=15, seconds=3)  # 15 users, a pool of 10: exit 12
    assert run.code == 12, run.output[-3000:]
    line = gate_line(run.stdout)
    assert line.endswith("(exit code 12)."), run.stdout[-2000:]
    assert not line.startswith("Gate: PASS")
    assert run.results is not None and run.results["exit_code"] == 12


def _endless(head: bytes, piece: bytes, count: int = 20_000) -> Behaviour:
    """``head``, then ``piece`` as fast as the socket takes it (``count`` times, the client normally gives up first)."""

    def write(_req: Request, sock) -> bool:  # type: ignore[no-untyped-def]
        try:
            sock.sendall(head)
            for _ in range(count):
                sock.sendall(piece)
        except OSError:
            pass
        return False

    return write


def test_protocol_garbage_is_failures_and_never_stalls_the_load_generator(
    pool: Path, platforms: list[HostilePlatform], tmp_path: Path
) -> None:
    platform = serve(platforms, {
        LOGIN: GOOD_LOGIN,
        AGENTS: _endless(b"HTTP/1.1 200 OK\r\n", b"X-Pad: " + b"a" * 4000 + b"\r\n"),  # 80 MB of headers
        WORKFLOWS: _endless(b"HTTP/1.1 200 OK\r\nX-Big: ", b"a" * 4000),  # one header of 80 MB
        MCP: _endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n", 1_000_000),  # interim answers, at full speed
        AGENT: _raw("HELLO WORLD\r\n\r\n"),  # not HTTP at all
        COLLECTIONS: answer(200, b'{"collections": ["\xff\xfe"]}'),  # not UTF-8
        CREATE: answer(201, b'{}{"id": "x"}', {"Content-Length": "2"}),  # a body longer than its Content-Length
        HEALTH: answer(200, b"", {"Content-Length": "-1"}),  # a negative length
    })  # fmt: skip
    run, rss_mib = locust(platform, pool, tmp_path, users=4, seconds=5, extra=("--request-timeout", "2"))
    assert_no_exception(run)
    assert run.code == 3, run.output[-3000:]
    stats = failures_by_endpoint(run)
    expected = {
        AGENTS: "more than 256 KiB of headers",
        WORKFLOWS: "more than 256 KiB of headers",
        MCP: "more than 256 KiB of headers",
        ("GET", "/api/v1/agents/{id}"): "HTTPParseError",
        COLLECTIONS: "with a body that is not JSON",
        HEALTH: "HTTPParseError",
    }
    for (method, name), reason in expected.items():
        requests, failed = stats[(method, name)]
        assert requests > 0 and failed == requests, (method, name, stats)
        found = reasons_of(run, method, name)
        assert found and all(reason in r for r in found), (method, name, found)
    # the extra bytes after a short Content-Length break the next answer on that connection, never a user
    assert stats[CREATE][0] > 0
    assert rss_mib < 200, f"Locust peaked at {rss_mib:.0f} MiB"


def test_answers_of_the_wrong_shape_are_failures(pool: Path, platforms: list[HostilePlatform], tmp_path: Path) -> None:
    platform = serve(platforms, {
        LOGIN: GOOD_LOGIN,
        AGENTS: json_answer([{"id": "a0"}]),  # a list where an object is expected
        WORKFLOWS: json_answer(None),  # null
        COLLECTIONS: json_answer({"collections": "none"}),  # the key holds no list
        MCP: answer(204),  # no content where a list is expected
        AGENT: answer(200, b"", {"Content-Type": "application/json"}),  # 200, empty body
        CREATE: answer(200, b'{"id": "x", "name": '),  # JSON cut short (its Content-Length is honest)
    })  # fmt: skip
    run, _ = locust(platform, pool, tmp_path, users=3, seconds=4)
    assert_no_exception(run)
    assert run.code == 3, run.output[-3000:]
    stats = failures_by_endpoint(run)
    expected = {
        AGENTS: "HTTP 200 without the 'agents' list",
        WORKFLOWS: "HTTP 200 without the 'workflows' list",
        COLLECTIONS: "HTTP 200 without the 'collections' list",
        MCP: "HTTP 204",
        ("GET", "/api/v1/agents/{id}"): "HTTP 200 with a body that is not JSON",
        CREATE: "HTTP 200 with a body that is not JSON",
    }
    for (method, name), reason in expected.items():
        requests, failed = stats[(method, name)]
        assert requests > 0 and failed == requests, (method, name, stats)
        found = reasons_of(run, method, name)
        assert found and all(reason in r for r in found), (method, name, found)
