"""The package's public face: every name in ``__all__`` resolves to the real object."""

from __future__ import annotations

import agentic_loadkit.provisioning as api
from agentic_loadkit.provisioning.down import teardown
from agentic_loadkit.provisioning.up import provision as up


def test_every_exported_name_resolves() -> None:
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert api.provision_up is up.provision_up
    assert api.provision_down is teardown.provision_down


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        api.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("an unknown export resolved")
