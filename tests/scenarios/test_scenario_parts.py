"""The scenarios' parts on their own: pool files, the broker's books, routes, profiles, gate, results, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agentic_loadkit.provisioning.errors import CredentialsError, InputError
from agentic_loadkit.provisioning.runs.poolfile import CredentialRow, read_credentials
from agentic_loadkit.scenarios.broker import PoolBroker, interleave_by_tenant
from agentic_loadkit.scenarios.credentials import TenantCatalog, TenantObjects, load_catalog, resolve_pool_source
from agentic_loadkit.scenarios.figures import ISOLATION_BREACH, RATE_LIMITED, collect_figures
from agentic_loadkit.scenarios.gate import GateTargets, evaluate, render_table
from agentic_loadkit.scenarios.options import ScenarioOptions, parse_wait_time
from agentic_loadkit.scenarios.pool import LocalPoolClient
from agentic_loadkit.scenarios.results import build_results, compare_with_baseline, load_baseline, write_results
from agentic_loadkit.scenarios.routes import Routes, load_routes
from agentic_loadkit.scenarios.shapes import PROFILES, resolve_profile
from locust.stats import RequestStats
from prometheus_client.parser import text_string_to_metric_families

HEADER = "email,password,tenant_id,tenant_slug,user_id,role\n"
SECRET = "s3cret-Pa55"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "credentials.csv"
    path.write_text(header + body)
    return path


def _accounts(n: int, tenants: int = 2) -> list[CredentialRow]:
    return [
        CredentialRow(f"u{i}@x.test", SECRET, f"t{i % tenants}", f"t{i % tenants}", f"u{i}", "member") for i in range(n)
    ]


# -- the pool's files -------------------------------------------------------------------------------


def test_accounts_are_read_and_inactive_rows_skipped(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        f"a@x.test,{SECRET},t1,one,u1,member,true\nb@x.test,{SECRET},t1,one,u2,admin,false\n",
        header=HEADER.strip() + ",is_active\n",
    )
    accounts = read_credentials(path)
    assert [a.email for a in accounts] == ["a@x.test"]
    assert SECRET not in repr(accounts[0])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("", "is empty: it has a header but no accounts"),
        (f"a@x.test,{SECRET},t1,one,u1\n", "truncated or malformed at line 2"),
        (f"a@x.test,{SECRET},t1,one,u1,member\nb@x.test,pw,t1,one,u2,mem", "truncated"),
        (f"a@x.test,{SECRET},t1,one,u1,member\nA@x.test,{SECRET},t1,one,u2,member\n", "twice (lines 2 and 3)"),
        (f",{SECRET},t1,one,u1,member\n", "empty email at line 2"),
    ],
)
def test_bad_credentials_files_are_one_sentence(tmp_path: Path, body: str, fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        read_credentials(_csv(tmp_path, body))
    assert fragment in info.value.message
    assert SECRET not in info.value.message
    assert info.value.exit_code == 12


def test_missing_empty_and_headerless_files(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="does not exist"):
        read_credentials(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CredentialsError, match="is empty"):
        read_credentials(empty)
    with pytest.raises(CredentialsError, match="lacks the column"):
        read_credentials(_csv(tmp_path, "a,b\n", header="email,password\n"))


def test_pool_source_defaults_to_the_newest_ready_run(tmp_path: Path) -> None:
    for run_id, created in (("old", "2024-01-01T00:00:00+00:00"), ("new", "2025-06-01T00:00:00+00:00")):
        run = tmp_path / "runs" / run_id
        run.mkdir(parents=True)
        (run / "credentials.csv").write_text(HEADER)
        (run / "manifest.json").write_text(
            json.dumps(
                {"format": 1, "run_id": run_id, "created_at": created, "credentials": "credentials.csv", "tenants": []}
            )
        )
    (tmp_path / "runs" / "unready").mkdir()
    source = resolve_pool_source(None, str(tmp_path))
    assert source.credentials == tmp_path / "runs" / "new" / "credentials.csv"
    assert source.manifest == tmp_path / "runs" / "new" / "manifest.json"
    with pytest.raises(CredentialsError, match="No ready run"):
        resolve_pool_source(None, str(tmp_path / "elsewhere"))


def test_catalog_reads_ids_per_tenant(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(
        json.dumps(
            {
                "format": 1,
                "run_id": "r1",
                "tenants": [{"id": "t1", "slug": "one", "agents": ["a1", 2], "workflows": ["w1"]}],
            }
        )
    )
    catalog = load_catalog(manifest)
    assert catalog.run_id == "r1"
    assert catalog.objects_of("t1").agents == ("a1", "2")
    assert catalog.objects_of("unknown").agents == ()
    manifest.write_text("{not json")
    with pytest.raises(CredentialsError, match="not readable JSON"):
        load_catalog(manifest)


# -- rules the credentials command's reader had and the scenarios' lacked, before the two became one ----


@pytest.mark.parametrize(
    ("header", "body", "fragment"),
    [
        ("password,email,tenant_id,tenant_slug,user_id,role\n", f"{SECRET},a@x.test,t1,one,u1,member\n",
         "does not start with the header email,password"),
        (HEADER, f"a@x.test,{SECRET},t1,one,u1,member\n\nb@x.test,{SECRET},t1,one,u2,member\n",
         "truncated or malformed at line 3: it has 0 fields instead of 6"),
    ],
)  # fmt: skip
def test_a_reordered_header_or_a_blank_line_is_refused(tmp_path: Path, header: str, body: str, fragment: str) -> None:
    with pytest.raises(CredentialsError) as info:
        read_credentials(_csv(tmp_path, body, header=header))
    assert fragment in info.value.message
    assert SECRET not in info.value.message


def test_a_pool_that_is_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "credentials.csv"
    path.write_bytes(HEADER.encode() + b"a@x.test,\xff\xfe,t1,one,u1,member\n")
    with pytest.raises(CredentialsError, match="is not UTF-8 text"):
        read_credentials(path)


def test_a_manifest_of_another_format_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"format": 2, "run_id": "r1", "tenants": []}))
    with pytest.raises(CredentialsError, match="is not a format-1 provision manifest"):
        load_catalog(manifest)


# -- the broker's books -----------------------------------------------------------------------------


def test_broker_never_leases_an_account_twice_and_spreads_tenants() -> None:
    broker = PoolBroker(_accounts(6, tenants=3))
    leases = [broker.checkout(f"w{i % 2}") for i in range(6)]
    assert all(lease is not None for lease in leases)
    emails = [lease.account.email for lease in leases if lease]
    assert len(set(emails)) == 6
    assert [lease.account.tenant_id for lease in leases[:3] if lease] == ["t0", "t1", "t2"]
    assert broker.checkout("w0") is None  # dry, policy fail
    assert broker.exhausted_need == 7
    assert broker.checkin(emails[0], "w1") is False  # w1 does not hold it (w0 does)
    assert broker.checkin(emails[0], "w0") is True
    again = broker.checkout("w1")
    assert again is not None and again.account.email == emails[0]
    assert broker.snapshot().in_use == 6 and broker.peak_in_use == 6


def test_broker_reuse_policy_counts_shared_leases() -> None:
    broker = PoolBroker(_accounts(2), policy="reuse")
    leases = [broker.checkout("local") for _ in range(5)]
    assert all(lease is not None for lease in leases)
    assert broker.reused == 3 and [lease.reused for lease in leases if lease] == [False, False, True, True, True]
    assert broker.in_use == 2 and broker.leases == 5
    for lease in leases:
        assert lease is not None
        broker.checkin(lease.account.email, "local")
    assert broker.in_use == 0 and broker.free == 2


def test_broker_reclaims_a_vanished_workers_accounts() -> None:
    broker = PoolBroker(_accounts(4))
    for holder in ("gone", "gone", "alive"):
        broker.checkout(holder)
    assert broker.release_holder("gone") == 2
    assert broker.in_use == 1 and broker.holder_ids() == {"alive"}


def test_probe_leases_carry_only_other_tenants_ids() -> None:
    catalog = TenantCatalog(
        "r",
        {
            "t0": TenantObjects("t0", agents=("a0",), workflows=("w0",)),
            "t1": TenantObjects("t1", agents=("a1", "a2"), workflows=("w1",)),
        },
    )
    broker = PoolBroker(_accounts(2), catalog=catalog)
    lease = broker.checkout("local", probe=True)
    assert lease is not None and lease.account.tenant_id == "t0"
    assert lease.agents == ("a0",) and lease.foreign_agents == ("a1", "a2") and lease.foreign_workflows == ("w1",)
    plain = broker.checkout("local")
    assert plain is not None and plain.foreign_agents == ()


def test_local_client_reports_exhaustion_once_per_dry_checkout() -> None:
    calls: list[int] = []
    client = LocalPoolClient(PoolBroker(_accounts(1)), lambda b: calls.append(b.size))
    lease = client.checkout()
    with pytest.raises(CredentialsError):
        client.checkout()
    assert calls == [1]
    client.checkin(lease)
    assert client.checkout().account.email == lease.account.email


def test_interleave_by_tenant_round_robins() -> None:
    accounts = [CredentialRow(f"{t}{i}", "p", t, t, f"{t}{i}", "m") for t in "ab" for i in range(3)]
    assert [a.tenant_id for a in interleave_by_tenant(accounts)] == list("ababab")


# -- routes, profiles, options ----------------------------------------------------------------------


def test_routes_default_to_the_contract_and_a_file_changes_them(tmp_path: Path) -> None:
    assert load_routes(None) == Routes()
    assert Routes().agent_path("42") == "/api/v1/agents/42"
    path = tmp_path / "routes.toml"
    path.write_text('[paths]\nagents = "/v2/agents"\nagent = "/v2/agents/{id}"\n[list_keys]\nagents = "items"\n')
    routes = load_routes(path)
    assert (routes.agents, routes.agent_path("7"), routes.agents_key) == ("/v2/agents", "/v2/agents/7", "items")
    assert routes.workflows == Routes().workflows
    assert Routes.from_wire(routes.to_wire()) == routes


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[paths]\nagentz = "/x"\n', "unknown key 'paths.agentz'"),
        ('[paths]\nagents = "v2/agents"\n', "does not start with '/'"),
        ('[paths]\nagent = "/v2/agents"\n', "placeholder"),
        ("[paths\n", "not valid TOML"),
        ('[oops]\nx = "y"\n', "unknown table 'oops'"),
    ],
)
def test_bad_routes_files(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    with pytest.raises(InputError, match="routes file") as info:
        load_routes(path)
    assert fragment in info.value.message


def test_profiles_are_the_guides_and_compress_in_time() -> None:
    assert {n: (p.peak_users, p.stages[0].spawn_rate, p.duration_s) for n, p in PROFILES.items()} == {
        "light": (10, 1, 120),
        "medium": (50, 5, 600),
        "heavy": (200, 10, 1800),
        "spike": (500, 50, 300),
    }
    light = resolve_profile("light", time_scale=0.5)
    assert (light.duration_s, light.stages[0].spawn_rate, light.peak_users) == (60, 2, 10)
    assert light.users_at(10) == (10, 2) and light.users_at(60) is None
    custom = resolve_profile("spike", time_scale=0.1, users=20, spawn_rate=5, run_time=12)
    assert (custom.peak_users, custom.stages[0].spawn_rate, custom.duration_s) == (20, 5, 12)
    with pytest.raises(InputError, match="Unknown load profile 'huge'; choose one of light, medium, heavy, spike"):
        resolve_profile("huge")
    with pytest.raises(InputError, match="--time-scale"):
        resolve_profile("light", time_scale=0)


def test_wait_time_and_option_validation() -> None:
    assert parse_wait_time("0") == (0, 0) and parse_wait_time("0.5-1.5") == (0.5, 1.5)
    for bad in ("fast", "2-1", "-1", "1-2-3"):
        with pytest.raises(InputError, match="--wait-time"):
            parse_wait_time(bad)
    opts = ScenarioOptions.from_namespace(None)
    assert opts.targets == GateTargets() and opts.pool_exhausted == "fail" and opts.gate
    import argparse

    with pytest.raises(InputError, match="--pool-timeout"):
        ScenarioOptions.from_namespace(argparse.Namespace(pool_timeout=0))


# -- gate, results, baseline ------------------------------------------------------------------------


def _stats(samples: dict[tuple[str, str], list[int]], failures: dict[tuple[str, str], list[str]]) -> RequestStats:
    stats = RequestStats()
    for (method, name), times in samples.items():
        for t in times:
            stats.log_request(method, name, t, 10)
    for (method, name), errors in failures.items():
        for error in errors:
            stats.log_error(method, name, error)
    stats.total.start_time -= 10  # a 10 s run
    stats.total.last_request_timestamp = stats.total.start_time + 10
    return stats


def test_gate_keeps_logins_apart_and_judges_each_target() -> None:
    stats = _stats(
        {("GET", "/a"): [10] * 990 + [900] * 10, ("POST", "/login"): [3000] * 5},
        {("GET", "/a"): [f"{RATE_LIMITED} (HTTP 429, X-RateLimit-Limit: 60)"] * 2},
    )
    figures = collect_figures(stats, ["/login"])
    assert figures.totals.requests == 1000 and figures.logins is not None and figures.logins.requests == 5
    assert figures.rate_limited == 2 and figures.totals.rps == pytest.approx(100.0)
    checks = {c.name: c for c in evaluate(figures, GateTargets(min_rps=50))}
    assert checks["p95, all endpoints but logins"].passed is True  # 0.2 % errors, p95 10 ms
    assert checks["error rate, all endpoints but logins"].passed is True
    assert checks["logins p95"].passed is False  # 3 s logins breach their own line only
    assert "p95 POST /login" not in checks
    # the limiter's refusals: a judged line of their own, and one shown per endpoint
    limited = checks["rate-limited answers (429, or X-RateLimit-Remaining: 0)"]
    assert (limited.passed, limited.measured) == (False, "2 of 1005 answers")
    assert checks["  rate-limited GET /a"].measured == "2 of 1000 (HTTP 429)"
    assert checks["  rate-limited GET /a"].passed is None
    assert checks["throughput, all endpoints but logins"].measured_value == pytest.approx(99.8)  # refusals left out
    table = render_table(list(checks.values()), notes=["x"])
    assert "BREACH - 2 of 7 checks failed" in table and "note: x" in table and "logins p95" in table


def test_isolation_line_only_when_probes_ran() -> None:
    quiet = collect_figures(_stats({("GET", "/a"): [5]}, {}), [])
    assert not [c for c in evaluate(quiet, GateTargets()) if "isolation" in c.name]
    stats = _stats(
        {("GET", "[isolation] /agents/{id}"): [5] * 4},
        {("GET", "[isolation] /agents/{id}"): [f"{ISOLATION_BREACH}: x"]},
    )
    checks = [c for c in evaluate(collect_figures(stats, []), GateTargets()) if c.name == "tenant isolation breaches"]
    assert [(c.measured, c.passed) for c in checks] == [("1", False)]


def test_results_round_trip_and_baseline_regression(tmp_path: Path) -> None:
    figures = collect_figures(_stats({("GET", "/a"): [100] * 100}, {}), [])
    checks = evaluate(figures, GateTargets(min_rps=1))
    path = write_results(
        tmp_path / "out" / "r.json", build_results(figures, checks, meta={"run_id": "r1"}, exit_code=0)
    )
    doc = json.loads(path.read_text())
    assert doc["run_id"] == "r1" and doc["totals"]["p95_ms"] == 100 and doc["gate"]["passed"] is True
    assert doc["endpoints"][0]["p99_ms"] == 100 and doc["endpoints"][0]["rps"] == pytest.approx(10.0)
    baseline = load_baseline(path)
    same = compare_with_baseline(figures, baseline, 10)
    assert [c.passed for c in same] == [True, True]
    slower = collect_figures(_stats({("GET", "/a"): [200] * 50}, {}), [])
    worse = compare_with_baseline(slower, baseline, 10)
    assert [c.passed for c in worse] == [False, False]
    (tmp_path / "bad.json").write_text('{"format": 1}')
    with pytest.raises(InputError, match="not a results file"):
        load_baseline(tmp_path / "bad.json")
    with pytest.raises(InputError, match="does not exist"):
        load_baseline(tmp_path / "missing.json")


def test_metrics_text_parses_as_prometheus() -> None:
    from agentic_loadkit.scenarios.metrics import render_metrics
    from agentic_loadkit.scenarios.pool import install_pool_master
    from agentic_loadkit.scenarios.users import AgenticPlatformUser
    from locust.env import Environment

    env = Environment(user_classes=[AgenticPlatformUser])
    env.create_local_runner()
    broker = PoolBroker(_accounts(3))
    install_pool_master(env, broker, lambda b: None)
    broker.checkout("local")
    env.stats.log_request("GET", 'odd "name"\\x', 12, 5)
    env.stats.log_error("GET", 'odd "name"\\x', "HTTP 500")
    families = {f.name: f for f in text_string_to_metric_families(render_metrics(env))}
    requests = {(s.labels["method"], s.labels["name"]): s.value for s in families["locust_requests"].samples}
    assert requests[("GET", 'odd "name"\\x')] == 1 and requests[("", "Aggregated")] == 1
    pool = {s.labels["state"]: s.value for s in families["loadkit_pool_accounts"].samples}
    assert pool == {"in_use": 1, "free": 2}
    quantiles = {s.labels["quantile"] for s in families["locust_response_time_milliseconds"].samples}
    assert quantiles == {"0.5", "0.95", "0.99"}
    assert env.runner is not None
    env.runner.quit()


def test_user_classes_carry_the_guides_weights() -> None:
    from collections import Counter

    from agentic_loadkit.scenarios.users import AgenticPlatformUser, ReadOnlyUser

    def weights(cls: Any) -> dict[str, int]:
        return dict(Counter(t.__name__ for t in cls.tasks))

    assert weights(AgenticPlatformUser) == {
        "list_agents": 10,
        "get_agent": 5,
        "create_agent": 3,
        "list_workflows": 8,
        "list_collections": 5,
        "list_mcp_servers": 2,
        "health": 1,
    }
    assert weights(ReadOnlyUser) == {"list_agents": 20, "list_workflows": 10, "list_collections": 5}
