"""The parts that learn how the platform speaks and judge its resources, without Locust runs.

OpenAPI documents are the reference platform's own (FastAPI builds them from its routes, in
both dialects); HTTP is real, on 127.0.0.1 (a small ``http.server`` in a thread).
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agentic_loadkit.provisioning.errors import InputError
from agentic_loadkit.reference_platform.app import create_app
from agentic_loadkit.reference_platform.settings import PlatformSettings
from agentic_loadkit.scenarios.dialects import AGENT_BASE_BODY, AgentPayloads, login_request, rate_limit_refusal
from agentic_loadkit.scenarios.discovery import dialect_of, discover, routes_from_openapi
from agentic_loadkit.scenarios.gate import Check, render_table
from agentic_loadkit.scenarios.platform_metrics import PlatformMetricsScraper
from agentic_loadkit.scenarios.probe_http import fetch
from agentic_loadkit.scenarios.routes import GUIDE_ROUTES, V1_ROUTES, FieldRule, Routes, load_routes
from agentic_loadkit.scenarios.warmup import LimitSeen, WarmUp, preflight_warnings
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

SETTINGS = PlatformSettings(database_url="postgresql://postgres@127.0.0.1:5432/unused")


def _openapi(dialect: str) -> dict:
    return create_app(SETTINGS, dialect=dialect).openapi()  # type: ignore[arg-type]


# -- discovery ------------------------------------------------------------------------------------


def test_the_v1_document_gives_v1s_routes_and_create_rules() -> None:
    routes, missing = routes_from_openapi(_openapi("v1"))
    assert missing == ()
    assert dialect_of(routes) == "v1"
    assert (routes.login, routes.login_body, routes.username_field, routes.token_field) == (
        "/v1/auth/login", "json", "email", "access_token")
    assert (routes.agents_key, routes.workflows_key, routes.collections_key, routes.mcp_servers_key) == (
        "data", "workflows", "data", "servers")
    assert (routes.agent, routes.workflow) == ("/v1/agents/{id}", "/v1/workflows/workflows/{id}")
    rules = {r.name: r for r in routes.agent_fields}
    assert routes.required_agent_fields == ("name", "slug")
    assert rules["slug"].max_length == 100 and rules["name"].max_length == 255
    assert rules["temperature"].minimum == 0.0 and rules["temperature"].maximum == 2.0
    assert rules["max_tokens"].exclusive_minimum == 0 and rules["timeout_seconds"].exclusive_minimum == 0


def test_the_guide_document_gives_the_guides_routes() -> None:
    routes, missing = routes_from_openapi(_openapi("guide"))
    assert dialect_of(routes) == "guide"
    assert (routes.login, routes.login_body, routes.username_field) == ("/api/v1/auth/login", "form", "username")
    assert routes.required_agent_fields == ("name",)
    # the guide's list endpoints state no answer schema: their keys are kept from the preset, and said so
    assert "agents_key" in missing and routes.agents_key == GUIDE_ROUTES.agents_key


def test_a_document_that_is_not_openapi_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'paths'"):
        routes_from_openapi({"openapi": "3.1.0"})


def test_routes_file_overrides_discovery_and_takes_a_login_body(tmp_path: Path) -> None:
    path = tmp_path / "routes.toml"
    path.write_text('[login]\nbody = "form"\nusername_field = "username"\n[paths]\nhealth = "/health/live"\n')
    routes = load_routes(path, base=V1_ROUTES)
    assert (routes.login_body, routes.username_field, routes.health, routes.login) == (
        "form", "username", "/health/live", "/v1/auth/login")
    assert dialect_of(routes) == "custom"
    path.write_text('[login]\nbody = "xml"\n')
    with pytest.raises(InputError, match=re.escape('login.body = \'xml\'; it must be "json" or "form"')):
        load_routes(path)


def test_routes_travel_to_workers_with_their_create_rules() -> None:
    routes = V1_ROUTES
    assert Routes.from_wire(routes.to_wire()) == routes
    assert Routes.from_wire(GUIDE_ROUTES.to_wire()) == GUIDE_ROUTES


# -- dialects -------------------------------------------------------------------------------------


def test_login_bodies_of_both_dialects() -> None:
    body, headers = login_request(V1_ROUTES, "a@b.example", "pw")
    assert headers["Content-Type"] == "application/json" and body == '{"email": "a@b.example", "password": "pw"}'
    body, headers = login_request(GUIDE_ROUTES, "a@b.example", "p w")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body == "username=a%40b.example&password=p+w"


def test_v1_agent_bodies_have_unique_slugs_inside_the_schema() -> None:
    routes, _ = routes_from_openapi(_openapi("v1"))
    rules = {r.name: r for r in routes.agent_fields}
    first, second = AgentPayloads(routes, "user-1"), AgentPayloads(routes, "user-2")
    bodies = [first.next() for _ in range(50)] + [second.next() for _ in range(50)]
    slugs = [b["slug"] for b in bodies]
    assert len(set(slugs)) == 100
    for body in bodies:
        assert set(body) <= set(rules) and {"name", "slug"} <= set(body)
        assert 1 <= len(body["slug"]) <= 100 and 1 <= len(body["name"]) <= 255
        assert 0 <= body["temperature"] <= 2 and body["max_tokens"] > 0


def test_guide_agent_bodies_are_the_guides() -> None:
    body = AgentPayloads(GUIDE_ROUTES, "u").next()
    assert set(body) == set(AGENT_BASE_BODY) and "slug" not in body


def test_required_fields_are_filled_inside_their_bounds() -> None:
    routes = Routes(agent_fields=(
        FieldRule("name", required=True, max_length=8),
        FieldRule("slug", required=True, max_length=12),
        FieldRule("retries", "integer", required=True, exclusive_minimum=0, maximum=5),
        FieldRule("kind", required=True, choices=("chat", "tool")),
        FieldRule("enabled", "boolean", required=True),
        FieldRule("max_tokens", "integer", maximum=64),
    ))
    body = AgentPayloads(routes, "u").next()
    assert len(body["name"]) == 8 and len(body["slug"]) <= 12
    assert body["retries"] == 1 and body["kind"] == "chat" and body["enabled"] is True
    assert body["max_tokens"] == 64  # the guide's 1000, fitted under the schema's maximum


def test_rate_limit_refusals_whatever_the_status() -> None:
    assert rate_limit_refusal(429, {}) == "rate limited by the platform (HTTP 429, X-RateLimit-Limit: not given)"
    spent = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"}
    assert rate_limit_refusal(500, spent) == "rate limited by the platform (HTTP 500, X-RateLimit-Limit: 60)"
    assert rate_limit_refusal(200, spent, "/p/last-allowed") is None  # the last allowed request
    assert rate_limit_refusal(500, {}, "/p/last-allowed") is not None  # a bare 500 of a spent path
    assert rate_limit_refusal(500, {}, "/p/never-seen") is None  # a bare 500 elsewhere is a 500
    fresh = {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "59"}
    assert rate_limit_refusal(200, fresh, "/p/last-allowed") is None
    assert rate_limit_refusal(500, {}, "/p/last-allowed") is None  # its budget was renewed


# -- bounded HTTP, discovery over the wire --------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Callable[[], tuple[int, dict[str, str], bytes]]] = {}  # noqa: RUF012

    def do_GET(self) -> None:
        answer = self.routes.get(self.path)
        status, headers, body = answer() if answer else (404, {}, b'{"detail":"Not Found"}')
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Callable[[], tuple[int, dict[str, str], bytes]]]]]:
    routes: dict[str, Callable[[], tuple[int, dict[str, str], bytes]]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def test_redirects_are_followed_only_within_the_origin(server) -> None:  # type: ignore[no-untyped-def]
    base, routes = server
    routes["/a"] = lambda: (302, {"Location": "/b"}, b"")
    routes["/b"] = lambda: (200, {}, b"ok")
    routes["/away"] = lambda: (302, {"Location": "http://127.0.0.2:9/x"}, b"")
    assert fetch(base + "/a").body == b"ok"
    away = fetch(base + "/away")
    assert not away.ok and away.error == "redirected to another origin (http://127.0.0.2:9/x), not followed"
    routes["/big"] = lambda: (200, {}, b"x" * 5000)
    assert fetch(base + "/big", body_cap=1000).error == "answer larger than 1000 bytes"


def test_discovery_reads_the_document_where_v1_serves_it(server) -> None:  # type: ignore[no-untyped-def]
    import json

    base, routes = server
    doc = json.dumps(_openapi("v1")).encode()
    routes["/v1/openapi.json"] = lambda: (200, {"Content-Type": "application/json"}, doc)
    found = discover(base, None)
    assert found.dialect == "v1" and found.source == base + "/v1/openapi.json"
    assert found.line.startswith("v1 dialect: JSON login at /v1/auth/login, lists under data/workflows/servers, "
                                 "agent create needs slug")
    del routes["/v1/openapi.json"]
    found = discover(base, None)
    assert found.dialect == "guide" and found.source is None
    assert found.line.startswith("guide dialect (no OpenAPI document at /v1/openapi.json (HTTP 404), "
                                 "/openapi.json (HTTP 404), /api/v1/openapi.json (HTTP 404)): form login")
    with pytest.raises(InputError, match="could not be read \\(HTTP 404\\)"):
        discover(base, base + "/nowhere.json")


# -- the platform's /metrics ----------------------------------------------------------------------


def test_scraped_resources_are_measured_from_the_platforms_text(server) -> None:  # type: ignore[no-untyped-def]
    base, routes = server
    registry = CollectorRegistry()
    in_use = Gauge("db_connection_pool_size", "in use", registry=registry)
    Gauge("db_connection_pool_max", "max", registry=registry).set(20)
    rss = Gauge("process_resident_memory_bytes", "rss", registry=registry)
    cpu = Counter("process_cpu_seconds", "cpu", registry=registry)
    routes["/metrics"] = lambda: (200, {"Content-Type": "text/plain"}, generate_latest(registry))
    clock = iter([0.0, 10.0, 20.0])
    scraper = PlatformMetricsScraper(base + "/metrics", clock=lambda: next(clock))
    for pool, memory, seconds in ((3, 300 * 2**20, 1.0), (15, 500 * 2**20, 4.0), (6, 400 * 2**20, 5.0)):
        in_use.set(pool)
        rss.set(memory)
        cpu.inc(seconds)
        assert scraper.scrape_once()
    res = scraper.resources()
    assert res.db_pool_pct.value == pytest.approx(75.0)  # peak 15 of the platform's 20
    assert res.memory_bytes.value == 500 * 2**20
    assert res.cpu_pct.value == pytest.approx(100.0 * (10.0 - 1.0) / 20.0)  # 9 CPU-seconds over 20 s
    assert "busiest interval 50 %" in res.cpu_pct.text  # 5 CPU-seconds in the last 10 s


def test_missing_metrics_are_not_measured(server) -> None:  # type: ignore[no-untyped-def]
    base, routes = server
    routes["/metrics"] = lambda: (200, {"Content-Type": "text/plain"}, b"http_requests_total 3\n")
    scraper = PlatformMetricsScraper(base + "/metrics", pool_capacity=30)
    scraper.scrape_once()
    res = scraper.resources()
    assert not res.memory_bytes.measured and res.memory_bytes.reason == (
        "the platform's /metrics has no process_resident_memory_bytes")
    assert not res.cpu_pct.measured and not res.db_pool_pct.measured
    gone = PlatformMetricsScraper(base + "/nothing")
    gone.scrape_once()
    assert gone.resources().cpu_pct.reason == f"GET {base}/nothing answered HTTP 404"


def test_the_table_says_not_measured_and_counts_it() -> None:
    checks = [Check("p95", "< 500 ms", "20 ms", True), Check("platform CPU", "< 70 %", "not measured: x", None,
                                                              70.0, None, True)]
    table = render_table(checks)
    assert "not measured" in table.splitlines()[-2]
    assert table.splitlines()[-1] == "Gate: PASS - all 1 checks passed; 1 not measured (exit code 0)."


def test_preflight_warns_when_the_limit_is_below_the_planned_rate() -> None:
    warm = WarmUp(login_status=200, list_status=200, list_s=0.01,
                  limits=[LimitSeen("/v1/auth/login", 60, 58, 60.0), LimitSeen("/v1/agents", 60, 59, 60.0)])
    warnings = preflight_warnings(warm, login_path="/v1/auth/login", users=10, wait_mean_s=0.05,
                                  busiest_share=10 / 34, dialect="v1")
    assert len(warnings) == 1 and "on /v1/agents (per client IP and path" in warnings[0]
    roomy = WarmUp(limits=[LimitSeen("/v1/agents", 100_000, 99_999, 60.0)], list_s=0.01)
    assert preflight_warnings(roomy, login_path="/x", users=10, wait_mean_s=0.05, busiest_share=0.3,
                              dialect="v1") == []
    many = preflight_warnings(warm, login_path="/v1/auth/login", users=100, wait_mean_s=5.0,
                              busiest_share=0.01, dialect="v1")
    assert any("100 logins in the first 60 s" in w for w in many)
