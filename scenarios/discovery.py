"""API discovery: how the platform speaks, read from its OpenAPI document before any load.

FastAPI serves the document the platform's code is made of, so it is the one source
that cannot disagree with the platform (the guide does).  Probed in order (each with a
timeout, same-origin redirects only): ``--openapi URL`` when given, else
``/v1/openapi.json`` (v1), ``/openapi.json`` (FastAPI's default, the guide's) and
``/api/v1/openapi.json``.  From it come:

* the login: its path (a POST ending in ``/auth/login``, else ``/login`` or ``/token``),
  the body kind (JSON, or a form when the request body is form-encoded), the username
  and password fields (``email``/``username``, ``password``) and the token field;
* the prefix (the login path without ``/auth/login``);
* each list the guide's mix calls (agents, workflows, collections, MCP servers): the GET
  path without parameters ending in that name, and the key of its items: the answer
  schema's array property named like the resource, else ``data``/``items``/``results``,
  else its only array;
* the get-by-id paths (the list path plus one ``{parameter}``), written with ``{id}``;
* the create-agent body: every field of the POST schema with its type, whether it is
  required, and its bounds (lengths, minimum/maximum, exclusive bounds in either
  OpenAPI 3.0's or 3.1's form, enums).

A part the document does not state keeps the preset of the dialect its prefix names
(``/v1``: v1; else the guide's, re-prefixed) and is listed as such.  No document at all
means the guide dialect, and the line says so.  ``discover`` never raises for an
unreachable platform: the warm-up that follows says that in one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from agentic_loadkit.provisioning.errors import InputError

from .probe_http import Answer, fetch
from .routes import GUIDE_ROUTES, V1_ROUTES, FieldRule, Routes

__all__ = ["OPENAPI_CANDIDATES", "Discovery", "dialect_of", "discover", "routes_from_openapi"]

OPENAPI_CANDIDATES = ("/v1/openapi.json", "/openapi.json", "/api/v1/openapi.json")
_LISTS = {  # Routes field -> (last path segment, a segment that must also appear, if any)
    "agents": ("agents", None),
    "workflows": ("workflows", None),
    "collections": ("collections", None),
    "mcp_servers": ("servers", "mcp"),
}
_ITEM_KEYS = {"agents": "agents", "workflows": "workflows", "collections": "collections", "mcp_servers": "servers"}
_GENERIC_ITEM_KEYS = ("data", "items", "results")
_ONE = {"agents": "agent", "workflows": "workflow"}
_COMPARED = tuple(f.name for f in fields(Routes) if f.name != "agent_fields")


@dataclass(frozen=True)
class Discovery:
    """What discovery found: the routes, the dialect's name, where from, and the one line that says it."""

    routes: Routes
    dialect: str
    source: str | None
    line: str
    probed: tuple[str, ...] = ()
    not_in_document: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        r = self.routes
        return {
            "dialect": self.dialect,
            "line": self.line,
            "openapi": self.source,
            "probed": list(self.probed),
            "login": {"path": r.login, "body": r.login_body, "username_field": r.username_field,
                      "password_field": r.password_field, "token_field": r.token_field},
            "lists": {k: {"path": getattr(r, k), "items_key": getattr(r, f"{k}_key")} for k in _LISTS},
            "get_by_id": {"agent": r.agent, "workflow": r.workflow},
            "agent_create_required": list(r.required_agent_fields),
            "not_in_document": list(self.not_in_document),
            "routes_file_overrides": list(self.overridden),
        }

    def with_routes_file(self, path: str, routes: Routes) -> Discovery:
        """The discovery after a routes file changed some of it (the line names what changed)."""
        changed = tuple(n for n in _COMPARED if getattr(routes, n) != getattr(self.routes, n))
        if not changed:
            return self
        line = f"{self.line}; routes file {path} sets {', '.join(changed)}"
        return replace(self, routes=routes, dialect=dialect_of(routes), line=line, overridden=changed)


def dialect_of(routes: Routes) -> str:
    """'v1' or 'guide' when the routes are that preset's (paths, keys, login), else 'custom'."""
    for name, preset in (("v1", V1_ROUTES), ("guide", GUIDE_ROUTES)):
        if all(getattr(routes, n) == getattr(preset, n) for n in _COMPARED):
            return name
    return "custom"


# -- reading the document ------------------------------------------------------------------------


class _Doc:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        paths = doc.get("paths")
        self.paths: dict[str, Any] = paths if isinstance(paths, dict) else {}

    def resolve(self, schema: Any, depth: int = 0) -> dict[str, Any]:
        """A schema with ``$ref`` followed and ``allOf``/``anyOf``/``oneOf`` of one non-null part unwrapped."""
        if not isinstance(schema, dict) or depth > 20:
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = self.doc
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            return self.resolve(target, depth + 1)
        for combo in ("allOf", "anyOf", "oneOf"):
            parts = schema.get(combo)
            if isinstance(parts, list):
                real = [p for p in parts if not (isinstance(p, dict) and p.get("type") == "null")]
                if len(real) == 1:
                    merged = {k: v for k, v in schema.items() if k != combo}
                    return {**self.resolve(real[0], depth + 1), **merged}
        return schema

    def operation(self, path: str, method: str) -> dict[str, Any] | None:
        item = self.paths.get(path)
        op = item.get(method) if isinstance(item, dict) else None
        return op if isinstance(op, dict) else None

    def body(self, op: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """('json' | 'form' | None, the request body's schema)."""
        request = op.get("requestBody")
        content = request.get("content") if isinstance(request, dict) else None
        if not isinstance(content, dict):
            return None, {}
        for media, kind in (("application/json", "json"), ("application/x-www-form-urlencoded", "form"),
                            ("multipart/form-data", "form")):
            if media in content:
                return kind, self.resolve((content[media] or {}).get("schema"))
        return None, {}

    def answer(self, op: dict[str, Any]) -> dict[str, Any]:
        responses = op.get("responses")
        for code in ("200", "201"):
            answer = responses.get(code) if isinstance(responses, dict) else None
            content = answer.get("content") if isinstance(answer, dict) else None
            if isinstance(content, dict) and "application/json" in content:
                return self.resolve((content["application/json"] or {}).get("schema"))
        return {}

    def properties(self, schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
        props = schema.get("properties")
        return {k: self.resolve(v) for k, v in props.items()} if isinstance(props, dict) else {}


def _find_login(doc: _Doc) -> str | None:
    posts = [p for p in doc.paths if doc.operation(p, "post") is not None and "{" not in p]
    for suffix in ("/auth/login", "/login", "/auth/token", "/token"):
        found = sorted((p for p in posts if p.rstrip("/").endswith(suffix)), key=len)
        if found:
            return found[0]
    return None


def _find_list(doc: _Doc, kind: str, prefix: str) -> str | None:
    last, needs = _LISTS[kind]
    found = [
        p for p in doc.paths
        if "{" not in p and p.rstrip("/").split("/")[-1] == last and (needs is None or needs in p.split("/"))
        and doc.operation(p, "get") is not None
    ]
    found.sort(key=lambda p: (not p.startswith(prefix + "/"), len(p)))
    return found[0] if found else None


def _items_key(doc: _Doc, kind: str, path: str) -> str | None:
    op = doc.operation(path, "get")
    props = doc.properties(doc.answer(op)) if op else {}
    arrays = [k for k, v in props.items() if v.get("type") == "array"]
    for key in (_ITEM_KEYS[kind], *_GENERIC_ITEM_KEYS):
        if key in arrays:
            return key
    return arrays[0] if len(arrays) == 1 else None


def _find_one(doc: _Doc, list_path: str) -> str | None:
    pattern = re.compile(re.escape(list_path.rstrip("/")) + r"/\{[^/{}]+\}$")
    found = sorted(p for p in doc.paths if pattern.match(p) and doc.operation(p, "get") is not None)
    return re.sub(r"\{[^/{}]+\}$", "{id}", found[0]) if found else None


def _bound(schema: dict[str, Any], key: str) -> float | None:
    value = schema.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _field_rule(name: str, schema: dict[str, Any], required: bool) -> FieldRule:
    kind = schema.get("type") if isinstance(schema.get("type"), str) else "string"
    lo_ex, hi_ex = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    minimum, maximum = _bound(schema, "minimum"), _bound(schema, "maximum")
    if schema.get("exclusiveMinimum") is True:  # OpenAPI 3.0: a flag on minimum
        lo_ex, minimum = minimum, None
    if schema.get("exclusiveMaximum") is True:
        hi_ex, maximum = maximum, None
    lengths = [schema.get(k) if isinstance(schema.get(k), int) else None for k in ("minLength", "maxLength")]
    enum = schema.get("enum")
    return FieldRule(
        name, str(kind), required, lengths[0], lengths[1], minimum, maximum, lo_ex, hi_ex,
        tuple(str(v) for v in enum) if isinstance(enum, list) else (),
    )


def _agent_fields(doc: _Doc, agents_path: str) -> tuple[FieldRule, ...]:
    op = doc.operation(agents_path, "post")
    if op is None:
        return ()
    kind, schema = doc.body(op)
    if kind != "json":
        return ()
    required = set(schema.get("required") or ())
    return tuple(_field_rule(n, s, n in required) for n, s in doc.properties(schema).items())


def _preset_for(prefix: str) -> Routes:
    if prefix == "/v1":
        return V1_ROUTES
    if prefix == "/api/v1":
        return GUIDE_ROUTES
    paths = {n: prefix + getattr(GUIDE_ROUTES, n).removeprefix("/api/v1")
             for n in ("login", "agents", "agent", "workflow", "workflows", "collections", "mcp_servers")}
    return replace(GUIDE_ROUTES, **paths)


def routes_from_openapi(document: Any) -> tuple[Routes, tuple[str, ...]]:
    """The routes an OpenAPI document states, and the parts it did not state (kept from a preset)."""
    if not isinstance(document, dict) or not isinstance(document.get("paths"), dict):
        raise ValueError("not an OpenAPI document (no 'paths' object)")
    doc = _Doc(document)
    login = _find_login(doc)
    prefix = login[: -len("/auth/login")] if login and login.endswith("/auth/login") else ""
    base = _preset_for(prefix) if login else GUIDE_ROUTES
    found: dict[str, Any] = {}
    if login:
        found["login"] = login
        op = doc.operation(login, "post") or {}
        body, schema = doc.body(op)
        props = doc.properties(schema)
        if body:
            found["login_body"] = body
        user = next((k for k in ("email", "username", "login") if k in props), None)
        if user:
            found["username_field"] = user
        if "password" in props:
            found["password_field"] = "password"
        token = next((k for k in ("access_token", "token") if k in doc.properties(doc.answer(op))), None)
        if token:
            found["token_field"] = token
    for kind in _LISTS:
        path = _find_list(doc, kind, prefix)
        if path is None:
            continue
        found[kind] = path
        key = _items_key(doc, kind, path)
        if key:
            found[f"{kind}_key"] = key
        if kind in _ONE and (one := _find_one(doc, path)):
            found[_ONE[kind]] = one
    if "/health" in doc.paths:
        found["health"] = "/health"
    rules = _agent_fields(doc, found["agents"]) if "agents" in found else ()
    if rules:
        found["agent_fields"] = rules
    missing = tuple(n for n in (*_COMPARED, "agent_fields") if n not in found and n != "health")
    return replace(base, **found), missing


# -- probing -------------------------------------------------------------------------------------


def _describe(routes: Routes) -> str:
    keys = list(dict.fromkeys(getattr(routes, f"{k}_key") for k in _LISTS))
    extra = [n for n in routes.required_agent_fields if n != "name"]
    needs = f"agent create needs {', '.join(extra)}" if extra else "agent create needs no field beyond the guide's"
    body = "JSON" if routes.login_body == "json" else "form"
    return f"{body} login at {routes.login}, lists under {'/'.join(keys)}, {needs}"


def _why(answer: Answer) -> str:
    return answer.error or f"HTTP {answer.status}"


def discover(host: str, openapi: str | None, *, timeout: float = 5.0) -> Discovery:
    """Probe the OpenAPI document (``openapi``: a URL, 'off', or None for the usual places)."""
    base = host.rstrip("/")
    if openapi is not None and openapi.strip().lower() == "off":
        line = f"guide dialect (discovery off): {_describe(GUIDE_ROUTES)}"
        return Discovery(GUIDE_ROUTES, "guide", None, line)
    urls = [openapi] if openapi else [base + p for p in OPENAPI_CANDIDATES]
    failures: list[str] = []
    for url in urls:
        answer = fetch(url, timeout=timeout, headers={"Accept": "application/json"})
        if not answer.ok:
            failures.append(_why(answer))
            continue
        try:
            routes, missing = routes_from_openapi(answer.json())
        except ValueError as exc:
            failures.append(str(exc))
            continue
        dialect = dialect_of(routes)
        prefix = routes.login.rsplit("/auth", 1)[0] or "/"
        label = f"{dialect} dialect" if dialect != "custom" else f"custom dialect (prefix {prefix})"
        line = f"{label}: {_describe(routes)} (OpenAPI at {answer.url})"
        if missing:
            line += f"; not in the document, kept: {', '.join(missing)}"
        return Discovery(routes, dialect, answer.url, line, tuple(urls), missing)
    if openapi:
        raise InputError(f"The OpenAPI document at {openapi} could not be read ({failures[0]}).")
    tried = ", ".join(f"{p} ({why})" for p, why in zip(OPENAPI_CANDIDATES, failures, strict=True))
    line = f"guide dialect (no OpenAPI document at {tried}): {_describe(GUIDE_ROUTES)}"
    return Discovery(GUIDE_ROUTES, "guide", None, line, tuple(urls))
