"""The package's public faces: ``__all__`` of ``provisioning`` and of ``provisioning.api`` is
exactly the list below, and every name is the very object of its home module (a re-export,
never a second definition)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import agentic_loadkit.provisioning as provisioning
import agentic_loadkit.provisioning.api as api
import pytest

P = "agentic_loadkit.provisioning"

#: name -> the module that defines it, for ``provisioning.api``.
API_HOMES = {
    "DEFAULT_BCRYPT_COST": f"{P}.generate.passwords",
    "DEFAULT_PASSWORD_COUNT": f"{P}.generate.passwords",
    "DEFAULT_SKEW": f"{P}.generate.scales",
    "DEFAULT_STREAMS": f"{P}.up.settings",
    "DatabaseTarget": f"{P}.target.url",
    "DownPlan": f"{P}.down.model",
    "DownResult": f"{P}.down.model",
    "DownSettings": f"{P}.down.model",
    "EmbeddedPostgres": f"{P}.target.embedded",
    "PlannedTable": f"{P}.up.plan",
    "ResolvedDatabase": f"{P}.target.resolve",
    "RunList": f"{P}.runs.listing",
    "RunStatusReport": f"{P}.runs.listing",
    "UpPlan": f"{P}.up.plan",
    "UpResult": f"{P}.up.settings",
    "UpSettings": f"{P}.up.settings",
    "connect": f"{P}.target.resolve",
    "default_state_dir": f"{P}.target.statedir",
    "ensure_state_dir": f"{P}.target.statedir",
    "export_credentials": f"{P}.runs.poolfile",
    "forget_history": f"{P}.down.history",
    "list_runs": f"{P}.runs.listing",
    "load_schema_map": f"{P}.schema.schemamap",
    "mask_text": f"{P}.target.url",
    "mask_url": f"{P}.target.url",
    "parse_database_url": f"{P}.target.url",
    "parse_skew": f"{P}.generate.scales",
    "plan_down": f"{P}.down.plan",
    "plan_up": f"{P}.up.plan",
    "prepare_run": f"{P}.up.settings",
    "provision_down": f"{P}.down.teardown",
    "provision_up": f"{P}.up.provision",
    "resolve_database": f"{P}.target.resolve",
    "run_status": f"{P}.runs.listing",
    "run_summary": f"{P}.runs.listing",
    "run_tenant_ids": f"{P}.runs.ledger",
}

#: name -> the module that defines it, for the package itself.
PACKAGE_HOMES = {
    "DownPlan": f"{P}.down.model",
    "DownResult": f"{P}.down.model",
    "DownSettings": f"{P}.down.model",
    "ProgressCallback": f"{P}.progress",
    "ProgressEvent": f"{P}.progress",
    "ProvisionError": f"{P}.errors",
    "ResolvedDatabase": f"{P}.target.resolve",
    "UpPlan": f"{P}.up.plan",
    "UpResult": f"{P}.up.settings",
    "UpSettings": f"{P}.up.settings",
    "__version__": f"{P}._version",
    "plan_down": f"{P}.down.plan",
    "plan_up": f"{P}.up.plan",
    "provision_down": f"{P}.down.teardown",
    "provision_up": f"{P}.up.provision",
    "resolve_database": f"{P}.target.resolve",
}


def _assert_is_home_object(exported: Any, name: str, home: str) -> None:
    assert exported is getattr(importlib.import_module(home), name)
    if inspect.isclass(exported) or inspect.isfunction(exported):  # defined there, not re-exported
        assert exported.__module__ == home


def test_api_exports_exactly_these_names() -> None:
    assert sorted(api.__all__) == sorted(API_HOMES)
    assert len(set(api.__all__)) == len(api.__all__)


def test_package_exports_exactly_these_names() -> None:
    assert sorted(provisioning.__all__) == sorted(PACKAGE_HOMES)
    assert len(set(provisioning.__all__)) == len(provisioning.__all__)


@pytest.mark.parametrize(("name", "home"), sorted(API_HOMES.items()))
def test_api_name_is_its_home_module_object(name: str, home: str) -> None:
    _assert_is_home_object(getattr(api, name), name, home)


@pytest.mark.parametrize(("name", "home"), sorted(PACKAGE_HOMES.items()))
def test_package_name_is_its_home_module_object(name: str, home: str) -> None:
    _assert_is_home_object(getattr(provisioning, name), name, home)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        provisioning.no_such_thing  # noqa: B018
