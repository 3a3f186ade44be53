"""Fixtures for the scenario tests (helpers in ``scenario_support.py``).

``import locust`` monkey-patches the whole interpreter with gevent (sockets, threads,
ssl).  The test process runs asyncio code (asyncpg, the platform fixture), so the
scenario modules are imported here with Locust's patch switched off; Locust itself
always runs in subprocesses (patched, as in production).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from scenario_support import Platforms, ProvisionedRun, provision

_skip = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
try:
    import locust  # noqa: F401  (imported once, unpatched, before any test module needs it)
finally:
    if _skip is None:
        del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
    else:
        os.environ["LOCUST_SKIP_MONKEY_PATCH"] = _skip


@pytest.fixture(scope="module")
def provisioned(platform_db: DatabaseTarget, tmp_path_factory: pytest.TempPathFactory) -> ProvisionedRun:
    """``provision up``: 4 tenants x 5 users, 8 agents and 3 workflows per tenant (bcrypt cost 4)."""
    return provision(platform_db, tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def platforms(provisioned: ProvisionedRun) -> Iterator[Platforms]:
    registry = Platforms(provisioned.database_url)
    yield registry
    registry.stop_all()
