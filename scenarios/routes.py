"""The platform's endpoint paths and answer shapes, as the scenarios use them.

The defaults are those of ``platform-contract.md``.  A platform whose paths differ is
served by a routes file (``--routes FILE.toml``) instead of code changes::

    [paths]
    login = "/auth/token"            # POST, form fields below
    agents = "/v2/agents"            # GET list, POST create
    agent = "/v2/agents/{id}"        # GET one; "{id}" is replaced by the object's id
    workflow = "/v2/workflows/{id}"  # GET one (the isolation probe only)
    workflows = "/v2/workflows"
    collections = "/v2/collections"
    mcp_servers = "/v2/mcp"
    health = "/healthz"

    [list_keys]                       # the JSON key holding each list's items
    agents = "items"

    [login]
    username_field = "username"
    password_field = "password"
    token_field = "access_token"

Every key is optional; unknown keys are refused (a typo must not silently fall back to
a default).  The routes are loaded once, on the master (or the local runner), and handed
to the workers with every account, so a worker host needs no files at all.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from agentic_loadkit.provisioning.errors import InputError

__all__ = ["RELOGIN_SUFFIX", "Routes", "load_routes"]

RELOGIN_SUFFIX = " (re-login)"
"""Appended to the login path to name re-logins (after a 401) in Locust's statistics."""

_PATH_KEYS = ("login", "agents", "agent", "workflow", "workflows", "collections", "mcp_servers", "health")
_LIST_KEYS = ("agents", "workflows", "collections", "mcp_servers")
_LOGIN_KEYS = ("username_field", "password_field", "token_field")


@dataclass(frozen=True)
class Routes:
    """Paths of the endpoints the scenarios call, the lists' JSON keys and the login form's field names."""

    login: str = "/api/v1/auth/login"
    agents: str = "/api/v1/agents"
    agent: str = "/api/v1/agents/{id}"
    workflow: str = "/api/v1/workflows/workflows/{id}"
    workflows: str = "/api/v1/workflows/workflows"
    collections: str = "/api/v1/rag/collections"
    mcp_servers: str = "/api/v1/mcp/servers"
    health: str = "/health"
    agents_key: str = "agents"
    workflows_key: str = "workflows"
    collections_key: str = "collections"
    mcp_servers_key: str = "servers"
    username_field: str = "username"
    password_field: str = "password"
    token_field: str = "access_token"

    @property
    def login_names(self) -> frozenset[str]:
        """Statistics names under which logins are recorded (judged on their own gate line)."""
        return frozenset({self.login, self.login + RELOGIN_SUFFIX})

    def agent_path(self, agent_id: str) -> str:
        return self.agent.replace("{id}", agent_id)

    def workflow_path(self, workflow_id: str) -> str:
        return self.workflow.replace("{id}", workflow_id)

    def to_wire(self) -> dict[str, str]:
        """A plain dict, for Locust's messages to workers."""
        return asdict(self)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Routes:
        known = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in data.items() if k in known})


def _table(doc: dict[str, Any], name: str, allowed: tuple[str, ...], source: Path) -> dict[str, str]:
    table = doc.get(name, {})
    if not isinstance(table, dict):
        raise InputError(f"The routes file {source} has '{name}' as a value; it must be a [{name}] table.")
    for key, value in table.items():
        if key not in allowed:
            raise InputError(
                f"The routes file {source} has an unknown key '{name}.{key}'; known keys are {', '.join(allowed)}."
            )
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"The routes file {source} gives '{name}.{key}' a value that is not a non-empty string.")
    return dict(table)


def load_routes(path: str | Path | None) -> Routes:
    """The contract's routes, changed by the TOML file at ``path`` when given (see the module docstring)."""
    routes = Routes()
    if path is None or str(path) == "":
        return routes
    source = Path(path)
    try:
        doc = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"The routes file {source} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"The routes file {source} cannot be read ({exc.__class__.__name__}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"The routes file {source} is not valid TOML ({exc}).") from None
    unknown = set(doc) - {"paths", "list_keys", "login"}
    if unknown:
        raise InputError(
            f"The routes file {source} has an unknown table '{sorted(unknown)[0]}'; "
            "known tables are paths, list_keys, login."
        )
    paths = _table(doc, "paths", _PATH_KEYS, source)
    for key, value in paths.items():
        if not value.startswith("/"):
            raise InputError(f"The routes file {source} gives paths.{key} = {value!r}, which does not start with '/'.")
    for key in ("agent", "workflow"):
        if key in paths and "{id}" not in paths[key]:
            raise InputError(f"The routes file {source} gives paths.{key} without the '{{id}}' placeholder.")
    list_keys = {f"{k}_key": v for k, v in _table(doc, "list_keys", _LIST_KEYS, source).items()}
    login = _table(doc, "login", _LOGIN_KEYS, source)
    return replace(routes, **paths, **list_keys, **login)
