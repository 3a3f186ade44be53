"""Real headless Locust runs against the reference platform in both dialects, with no routes file.

The guide dialect's data comes from ``provision up``; the v1 dialect's is seeded by SQL in
v1's columns (``scenario_support.provision_v1``).  Each run is a few seconds: the mixed and
the read-only user together, plus one isolation probe, on pooled accounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from scenario_support import Platforms, ProvisionedRun, provision_v1, run_locust

LENIENT = ["--gate-p95-ms", "5000", "--gate-endpoint-p95-ms", "10000", "--gate-min-rps", "5",
           "--gate-login-p95-ms", "30000",
           # the platform shares 2 cores with the load generator: resource lines measured, not judged
           "--gate-db-pool-pct", "100.1", "--gate-cpu-pct", "1000"]
MIX = {  # the guide's mixed and read-only users: (method, path) per dialect
    "guide": {("GET", "/api/v1/agents"), ("GET", "/api/v1/agents/{id}"), ("POST", "/api/v1/agents"),
              ("GET", "/api/v1/workflows/workflows"), ("GET", "/api/v1/rag/collections"),
              ("GET", "/api/v1/mcp/servers"), ("GET", "/health")},
    "v1": {("GET", "/v1/agents"), ("GET", "/v1/agents/{id}"), ("POST", "/v1/agents"),
           ("GET", "/v1/workflows/workflows"), ("GET", "/v1/rag/collections"), ("GET", "/v1/mcp/servers"),
           ("GET", "/health")},
}
LINES = {
    "guide": "guide dialect: form login at /api/v1/auth/login, lists under agents/workflows/collections/servers",
    "v1": "v1 dialect: JSON login at /v1/auth/login, lists under data/workflows/servers, agent create needs slug",
}


@pytest.fixture(scope="module")
def v1_run(db_factory, tmp_path_factory: pytest.TempPathFactory) -> ProvisionedRun:  # type: ignore[no-untyped-def]
    target: DatabaseTarget = db_factory.new()
    return provision_v1(target, tmp_path_factory.mktemp("v1state"))


@pytest.fixture(scope="module")
def v1_platforms(v1_run: ProvisionedRun) -> Iterator[Platforms]:
    registry = Platforms(v1_run.database_url)
    yield registry
    registry.stop_all()


def _run(dialect: str, provisioned: ProvisionedRun, v1_run: ProvisionedRun, platforms: Platforms,
         v1_platforms: Platforms) -> tuple[ProvisionedRun, Platforms]:
    return (v1_run, v1_platforms) if dialect == "v1" else (provisioned, platforms)


async def _v1_agents_made(url: str) -> tuple[int, int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS made, count(DISTINCT (a.tenant_id, a.slug)) AS slugs,"
            " count(*) FILTER (WHERE a.tenant_id <> u.tenant_id) AS elsewhere"
            " FROM audit_logs l JOIN agents a ON a.id = l.resource_id JOIN users u ON u.id = l.user_id"
            " WHERE l.action = 'agent.create'"
        )
        assert row is not None
        return int(row["made"]), int(row["slugs"]), int(row["elsewhere"])
    finally:
        await conn.close()


@pytest.mark.parametrize("dialect", ["guide", "v1"])
def test_both_users_speak_the_dialect_found_with_no_failures(
    dialect: str, provisioned: ProvisionedRun, v1_run: ProvisionedRun, platforms: Platforms,
    v1_platforms: Platforms, tmp_path: Path,
) -> None:
    run, registry = _run(dialect, provisioned, v1_run, platforms, v1_platforms)
    url = registry.url(PLATFORM_DIALECT=dialect)
    res = run_locust(
        ["AgenticPlatformUser", "ReadOnlyUser", "--headless", "-u", "9", "-r", "9", "-t", "6s",
         "--host", url, "--credentials", str(run.run_dir), "--isolation-probes", "1", "--wait-time", "0.01-0.02",
         "--platform-metrics-interval", "1", *LENIENT],
        cwd=tmp_path,
        results=tmp_path / "results.json",
    )
    assert res.code == 0, res.output[-3000:]
    doc = res.results
    assert doc is not None
    # the discovery line: printed before the load, stored in the results, repeated under the gate
    assert LINES[dialect] in res.stderr and LINES[dialect] in doc["api"]["line"] and LINES[dialect] in res.stdout
    assert doc["api"]["dialect"] == dialect and doc["api"]["openapi"].endswith("openapi.json")
    assert doc["api"]["warm_up"]["login_status"] == 200 and doc["api"]["warm_up"]["list_status"] == 200
    counts = {(e["method"], e["name"]): (e["requests"], e["failures"]) for e in doc["endpoints"]}
    for key in MIX[dialect]:
        assert counts.get(key, (0, 0))[0] > 0, f"{key} got no request: {counts}"
    assert all(failures == 0 for _, failures in counts.values()), counts
    assert doc["logins"]["requests"] == 9 and doc["pool"]["peak_in_use"] == 9  # one pooled account each
    probes = {n: c for (m, n), c in counts.items() if n.startswith("[isolation]")}
    assert probes and doc["isolation"]["breaches"] == 0 and doc["isolation"]["requests"] > 0
    # the platform's /metrics was scraped: the three resource rows are measured, not assumed
    rows = {c["name"]: c for c in doc["gate"]["checks"]}
    for name in ("platform DB connection pool use", "platform resident memory",
                 "platform CPU, % of one core per process"):
        assert rows[name]["verdict"] == "pass" and rows[name]["measured_value"] is not None, rows[name]
    assert doc["platform_metrics"]["scrapes"] >= 3
    if dialect == "v1":
        made, slugs, elsewhere = asyncio.run(_v1_agents_made(run.database_url))
        created = counts[("POST", "/v1/agents")][0]
        assert made >= created > 0 and slugs == made and elsewhere == 0  # unique slugs, each in its own tenant


@pytest.mark.parametrize("headers", ["true", "false"])
def test_the_v1_rate_limiter_is_recognised_and_explained(
    headers: str, v1_run: ProvisionedRun, v1_platforms: Platforms, tmp_path: Path
) -> None:
    """v1 answers 500 over its limit: with the X-RateLimit-* headers (as the contract says) or
    without them (as the real code's Starlette sends it)."""
    url = v1_platforms.url(PLATFORM_V1_RATE_LIMIT="true", PLATFORM_V1_LIMIT_HEADERS=headers)
    res = run_locust(
        ["ReadOnlyUser", "--headless", "-u", "4", "-r", "4", "-t", "4s", "--host", url,
         "--credentials", str(v1_run.run_dir), "--wait-time", "0.005-0.01", *LENIENT],
        cwd=tmp_path,
        results=tmp_path / "r.json",
    )
    assert res.code == 3, res.output[-3000:]
    doc = res.results
    assert doc is not None and doc["rate_limited"] > 0
    refused = "rate limited by the platform (HTTP 500, X-RateLimit-Limit: 60)"
    limited = [e for e in doc["errors"] if refused in e["error"]]
    assert sum(e["occurrences"] for e in limited) == doc["rate_limited"]
    bare = [e for e in doc["errors"] if e["error"].endswith("HTTP 500") and "rate limited" not in e["error"]]
    assert not bare, bare  # no refusal left as a plain 500
    assert "rate-limited answers (429, or X-RateLimit-Remaining: 0)" in res.stdout
    assert "rate-limited GET /v1/agents" in res.stdout
    assert "counts per client IP and path" in res.stdout and "cannot be turned off by configuration" in res.stdout
    assert "pre-flight: the platform's rate limiter allows 60 requests per" in res.stderr  # warned before spawning
    throughput = {c["name"]: c for c in doc["gate"]["checks"]}["throughput, all endpoints but logins"]
    assert "rate-limited answers left out" in throughput["measured"]


def test_without_platform_metrics_the_resource_rows_are_not_measured(
    provisioned: ProvisionedRun, platforms: Platforms, tmp_path: Path
) -> None:
    url = platforms.url(PLATFORM_DIALECT="guide", PLATFORM_METRICS="false")
    res = run_locust(
        ["ReadOnlyUser", "--headless", "-u", "2", "-r", "2", "-t", "3s", "--host", url,
         "--credentials", str(provisioned.run_dir), *LENIENT],
        cwd=tmp_path,
        results=tmp_path / "r.json",
    )
    assert res.code == 0, res.output[-3000:]
    assert res.results is not None
    rows = {c["name"]: c for c in res.results["gate"]["checks"] if c["name"].startswith("platform ")}
    assert len(rows) == 3
    for row in rows.values():
        assert row["verdict"] == "not measured" and row["measured_value"] is None, row
        assert f"GET {url}/metrics answered HTTP 404" in row["measured"]
    assert "3 not measured" in res.stdout and "Gate: PASS" in res.stdout
