"""The platform's endpoint paths and answer shapes, as the scenarios use them.

Two presets follow the platform contract's two dialects: ``GUIDE_ROUTES`` (the load-testing guide:
``/api/v1``, form login, lists under their own names; also ``Routes()``) and
``V1_ROUTES`` (the platform's code: ``/v1``, JSON login ``{"email","password"}``,
agents and collections under ``data``, agent create needs ``slug``).  Before any load,
``discovery.py`` reads the platform's OpenAPI document and builds the routes from it;
a routes file (``--routes FILE.toml``) then overrides any part of what was found, for a
platform that differs from both::

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
    body = "form"                     # "form" (OAuth2 password form) or "json"
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

__all__ = ["GUIDE_ROUTES", "LOGIN_BODIES", "RELOGIN_SUFFIX", "V1_ROUTES", "FieldRule", "Routes", "load_routes"]

RELOGIN_SUFFIX = " (re-login)"
"""Appended to the login path to name re-logins (after a 401) in Locust's statistics."""

_PATH_KEYS = ("login", "agents", "agent", "workflow", "workflows", "collections", "mcp_servers", "health")
_LIST_KEYS = ("agents", "workflows", "collections", "mcp_servers")
_LOGIN_KEYS = ("body", "username_field", "password_field", "token_field")
LOGIN_BODIES = ("form", "json")
"""How the login's credentials are sent: an OAuth2 password form, or a JSON object."""


@dataclass(frozen=True)
class FieldRule:
    """One field of the create-agent body as the platform's OpenAPI schema states it.

    ``kind`` is the JSON-schema type ("string", "integer", "number", "boolean", "array",
    "object"); the bounds are the schema's (``None`` when it states none).
    """

    name: str
    kind: str = "string"
    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: float | None = None
    exclusive_maximum: float | None = None
    choices: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> FieldRule:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["choices"] = tuple(str(c) for c in values.get("choices") or ())
        return cls(**values)


@dataclass(frozen=True)
class Routes:
    """Paths of the endpoints the scenarios call, the lists' JSON keys, the login's body and field
    names, and (when the platform's OpenAPI document states it) the create-agent body's fields."""

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
    login_body: str = "form"
    username_field: str = "username"
    password_field: str = "password"
    token_field: str = "access_token"
    agent_fields: tuple[FieldRule, ...] = ()
    """The create-agent body's fields; empty when unknown (the guide's body is sent as it is)."""

    @property
    def required_agent_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.agent_fields if f.required)

    @property
    def login_names(self) -> frozenset[str]:
        """Statistics names under which logins are recorded (judged on their own gate line)."""
        return frozenset({self.login, self.login + RELOGIN_SUFFIX})

    def agent_path(self, agent_id: str) -> str:
        return self.agent.replace("{id}", agent_id)

    def workflow_path(self, workflow_id: str) -> str:
        return self.workflow.replace("{id}", workflow_id)

    def to_wire(self) -> dict[str, Any]:
        """A plain dict, for Locust's messages to workers."""
        wire: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "agent_fields"}
        wire["agent_fields"] = [rule.to_wire() for rule in self.agent_fields]
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Routes:
        known = {f.name for f in fields(cls)} - {"agent_fields"}
        rules = tuple(FieldRule.from_wire(r) for r in data.get("agent_fields") or () if isinstance(r, dict))
        return cls(**{k: str(v) for k, v in data.items() if k in known}, agent_fields=rules)


GUIDE_ROUTES = Routes()
V1_ROUTES = Routes(
    login="/v1/auth/login",
    agents="/v1/agents",
    agent="/v1/agents/{id}",
    workflow="/v1/workflows/workflows/{id}",
    workflows="/v1/workflows/workflows",
    collections="/v1/rag/collections",
    mcp_servers="/v1/mcp/servers",
    agents_key="data",
    collections_key="data",
    login_body="json",
    username_field="email",
    agent_fields=(
        FieldRule("name", required=True, min_length=1, max_length=255),
        FieldRule("slug", required=True, min_length=1, max_length=100),
        FieldRule("description"),
        FieldRule("model_provider"),
        FieldRule("model_name"),
        FieldRule("system_prompt"),
        FieldRule("temperature", "number", minimum=0.0, maximum=2.0),
        FieldRule("max_tokens", "integer", exclusive_minimum=0),
    ),
)
"""The v1 dialect as the contract states it (what discovery finds on a v1 platform)."""


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


def load_routes(path: str | Path | None, base: Routes = GUIDE_ROUTES) -> Routes:
    """``base`` (the discovered routes; the guide's by default), changed by the TOML file at ``path``."""
    routes = base
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
    if "body" in login:
        body = login.pop("body").strip().lower()
        if body not in LOGIN_BODIES:
            raise InputError(f"The routes file {source} gives login.body = {body!r}; it must be \"json\" or \"form\".")
        login["login_body"] = body
    changes: dict[str, Any] = {**paths, **list_keys, **login}
    return replace(routes, **changes)
