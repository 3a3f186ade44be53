"""``provision up`` with no schema map on the v1 dialect's schema (the platform's code), UUID and integer keys:
every NOT NULL column inside the platform's rules, references inside the tenant, pooled logins that
verify (bcrypt, and a real login on the reference platform), lists and gets of every provisioned
object answering 200 with the right counts, and a medium run."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from agentic_loadkit.provisioning.generate.scales import SCALES
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from agentic_loadkit.provisioning.up.provision import UpResult
from agentic_loadkit.reference_platform.server import PlatformProcess
from up_helpers import fetch, fetchval, run, run_counts, up
from v1_rules import cross_tenant_references, run_rows, violations

SMALL = SCALES["small"].as_dict()
LISTS = {  # path, item key, paging
    "agents": ("/v1/agents", "data"),
    "workflows": ("/v1/workflows/workflows", "workflows"),
    "collections": ("/v1/rag/collections", "data"),
    "mcp_servers": ("/v1/mcp/servers", "servers"),
}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("v1-state")


@pytest.fixture(scope="module", params=["uuid", "integer"])
def small(request: pytest.FixtureRequest, state: Path) -> tuple[DatabaseTarget, UpResult]:
    target = request.getfixturevalue("platform_v1_db" if request.param == "uuid" else "platform_v1_db_int")
    return target, up(target, state, seed=5)


def test_up_with_no_map_writes_exact_counts(small: tuple[DatabaseTarget, UpResult]) -> None:
    target, result = small
    assert run_counts(target, result.run_id) == SMALL and result.counts == SMALL
    assert result.dropped_columns == {"agents": ("created_by",), "collections": ("slug", "status")}


def test_every_not_null_column_follows_the_platform_rules(small: tuple[DatabaseTarget, UpResult]) -> None:
    target, result = small
    assert violations(target, result.run_id) == []


def test_references_stay_inside_the_tenant(small: tuple[DatabaseTarget, UpResult]) -> None:
    assert cross_tenant_references(small[0]) == 0


def test_vocabularies_are_used_in_realistic_shares(small: tuple[DatabaseTarget, UpResult]) -> None:
    target, result = small
    roles = {r["role"] for r in run_rows(target, "users", result.run_id)}
    servers = {r["server_type"] for r in run_rows(target, "mcp_servers", result.run_id)}
    steps = " ".join(str(r["steps"]) for r in run_rows(target, "workflows", result.run_id))
    assert roles == {"admin", "user", "viewer"} and servers == {"stdio", "sse", "websocket"}
    for kind in ("agent", "mcp_tool", "parallel", "conditional", "http"):
        assert f'"type":"{kind}"' in steps


def _pool(result: UpResult) -> list[dict[str, str]]:
    with open(result.credentials_path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_pooled_users_verify_and_only_active_ones_are_pooled(small: tuple[DatabaseTarget, UpResult]) -> None:
    target, result = small
    pool = _pool(result)
    users = {r["email"]: r for r in run_rows(target, "users", result.run_id)}
    assert {p["email"] for p in pool} == {e for e, u in users.items() if u["status"] == "active"}
    for p in pool[:6]:
        assert bcrypt.checkpw(p["password"].encode(), users[p["email"]]["password_hash"].encode())
        assert p["role"] == users[p["email"]]["role"]


def test_reference_platform_logs_in_lists_and_gets_every_object(small: tuple[DatabaseTarget, UpResult]) -> None:
    target, result = small
    pool = _pool(result)
    first_of = {}
    for p in pool:
        first_of.setdefault(p["tenant_id"], p)
    proc = PlatformProcess(target.asyncpg_url, env={"PLATFORM_V1_RATE_LIMIT": "false"})
    proc.start()
    try:
        with httpx.Client(base_url=proc.base_url, timeout=20.0) as client:
            for tenant, account in first_of.items():
                login = client.post("/v1/auth/login", json={"email": account["email"], "password": account["password"]})
                assert login.status_code == 200, login.text
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                for table, (path, key) in LISTS.items():
                    listed = client.get(path, headers=headers, params={"limit": 100} if table != "mcp_servers"
                                        else {"page_size": 100})
                    assert listed.status_code == 200, listed.text
                    live = fetchval(target, f"SELECT count(*) FROM {table} WHERE tenant_id::text = $1 "
                                    "AND deleted_at IS NULL", tenant)
                    assert len(listed.json()[key]) == live  # small: one page per tenant
                    for (oid,) in run(fetch(target, f"SELECT id::text FROM {table} WHERE tenant_id::text = $1",
                                            tenant)):
                        got = client.get(f"{path}/{oid}", headers=headers)
                        assert got.status_code == 200, (table, oid, got.text[:300])
    except BaseException:
        print(proc.log_text())
        raise
    finally:
        proc.stop()


def test_medium_run_follows_the_rules(db_factory: Any, state: Path) -> None:
    target = db_factory.new(schema="uuid", dialect="v1")
    result = up(target, state, scale="medium", seed=9)
    assert run_counts(target, result.run_id) == SCALES["medium"].as_dict()
    assert violations(target, result.run_id) == []
    assert cross_tenant_references(target) == 0
