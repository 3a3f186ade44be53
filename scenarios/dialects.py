"""How a request is said and an answer read, in whichever dialect the routes describe.

The guide and the platform's code disagree on the wire (the two dialects of the platform contract): the
guide logs in with an OAuth2 form and lists items under their own names; v1 logs in
with JSON ``{"email","password"}``, lists agents and collections under ``data``, and
refuses an agent without a ``slug`` unique in its tenant.  Everything that differs is a
field of ``Routes`` (discovered from the OpenAPI document, or from a routes file); this
module turns those fields into bodies and reads answers by them, so the users in
``users.py`` stay dialect-free.

Rate limiting is recognised whatever the status code: a 429, or any answer that is not
a success and carries ``X-RateLimit-Remaining: 0`` (v1's limiter raises inside a
middleware and answers 500; the contract says with its headers, the real code's
Starlette drops them).  So the process also remembers, per raw path (v1 counts per
client IP and path), the last ``X-RateLimit-Remaining`` and ``-Reset`` an allowed answer
carried: a bare refusal of a path whose budget was 0, before its window reset, is the
limiter too (answers of concurrent users arrive out of order, so "0" means a budget of at
most ``NEARLY_SPENT`` left).  A success with ``Remaining: 0`` is the last allowed request,
not a refusal.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from .figures import RATE_LIMITED
from .routes import FieldRule, Routes

__all__ = [
    "AGENT_BASE_BODY",
    "AgentPayloads",
    "LimitWatch",
    "login_request",
    "rate_limit_refusal",
    "token_from",
]

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

AGENT_BASE_BODY: dict[str, Any] = {
    "name": "loadtest agent",
    "description": "Created by an agentic-loadkit load test.",
    "system_prompt": "You are a helpful agent under load test.",
    "model_provider": "anthropic",
    "model_name": "claude-3-5-sonnet-20241022",
    "temperature": 0.7,
    "max_tokens": 1000,
}
"""The guide's create-agent body; a dialect's schema adds required fields and bounds values."""


def login_request(routes: Routes, email: str, password: str) -> tuple[str, dict[str, str]]:
    """The login body (text) and its Content-Type header, as the routes' ``login_body`` says."""
    fields = {routes.username_field: email, routes.password_field: password}
    if routes.login_body == "json":
        return json.dumps(fields), {"Content-Type": JSON}
    return urlencode(fields), {"Content-Type": FORM}


def token_from(doc: Any, routes: Routes) -> str | None:
    """The bearer token in a login answer: ``token_field`` at the top, or a dotted path (``data.token``)."""
    value: Any = doc
    for part in routes.token_field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None  # an empty one is judged by bearer_token_problem


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except (AttributeError, TypeError):
        return None
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if str(k).lower() == name.lower()), None)
    return str(value) if value is not None else None


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip()) if text is not None else None
    except ValueError:
        return None


NEARLY_SPENT = 3
"""A budget this small counts as spent (allowed answers arrive out of order with the refusals)."""


class LimitWatch:
    """The last rate-limit budget each raw path announced, in this process (bounded)."""

    def __init__(self, cap: int = 10_000) -> None:
        self._cap = cap
        self._spent: dict[str, tuple[float, str]] = {}  # path -> (reset epoch, limit) while nearly spent

    def note(self, path: str, headers: Any, now: float) -> None:
        remaining = _int(_header(headers, "X-RateLimit-Remaining"))
        if remaining is None:
            return
        if remaining > NEARLY_SPENT:
            self._spent.pop(path, None)
            return
        reset = _int(_header(headers, "X-RateLimit-Reset")) or 0
        reset_at = float(reset) if reset > 1e9 else now + (reset or 60)
        if len(self._spent) >= self._cap:
            self._spent.clear()
        self._spent[path] = (reset_at, _header(headers, "X-RateLimit-Limit") or "not given")

    def spent(self, path: str, now: float) -> str | None:
        """The announced limit when ``path``'s budget was 0 and its window has not reset yet."""
        entry = self._spent.get(path)
        if entry is None or now > entry[0] + 1.0:
            return None
        return entry[1]


_WATCH = LimitWatch()


def rate_limit_refusal(status: int, headers: Any, path: str | None = None) -> str | None:
    """The failure message when the answer is a rate limiter's refusal, else ``None``.

    With ``path``, successes feed the process's ``LimitWatch`` and a bare refusal of a
    path whose announced budget was 0 counts as the limiter's.
    """
    now = time.time()
    if 200 <= status < 400:
        if path is not None:
            _WATCH.note(path, headers, now)
        return None
    if status == 0:
        return None
    remaining = _header(headers, "X-RateLimit-Remaining")
    if status == 429 or (remaining is not None and remaining.strip() == "0"):
        limit = _header(headers, "X-RateLimit-Limit")
        return f"{RATE_LIMITED} (HTTP {status}, X-RateLimit-Limit: {limit or 'not given'})"
    if path is not None and remaining is None and (limit := _WATCH.spent(path, now)) is not None:
        return (f"{RATE_LIMITED} (HTTP {status}, X-RateLimit-Limit: {limit}) without headers, "
                f"after the path's allowed answers counted X-RateLimit-Remaining down to 0")
    return None


def _slug_text(stem: str, counter: int, rule: FieldRule) -> str:
    tail = f"-{counter}"
    longest = rule.max_length if rule.max_length is not None else 100
    return stem[: max(1, longest - len(tail))] + tail


def _number(rule: FieldRule, preferred: float) -> float:
    """``preferred`` moved inside the rule's bounds (an integer by whole steps)."""
    step = 1.0 if rule.kind == "integer" else 0.001
    value = preferred
    if rule.minimum is not None:
        value = max(value, rule.minimum)
    if rule.exclusive_minimum is not None and value <= rule.exclusive_minimum:
        value = rule.exclusive_minimum + step
    if rule.maximum is not None:
        value = min(value, rule.maximum)
    if rule.exclusive_maximum is not None and value >= rule.exclusive_maximum:
        value = rule.exclusive_maximum - step
    return value


def _fit_string(value: str, rule: FieldRule) -> str:
    if rule.max_length is not None and len(value) > rule.max_length:
        value = value[: rule.max_length]
    if rule.min_length is not None and len(value) < rule.min_length:
        value = value + "x" * (rule.min_length - len(value))
    return value


class AgentPayloads:
    """Create-agent bodies for one simulated user, valid for the routes' dialect.

    A field the schema requires and the guide's body lacks is filled: ``slug`` (and any
    other string) with a value unique per user and call, made of a digest of the user's
    id, a token drawn once per process (so two runs with one pool never collide) and a
    counter; numbers inside their bounds; booleans true; lists and objects empty.  Every
    value is then fitted into the schema's bounds (lengths, minimum/maximum, choices).
    With no schema (the guide dialect, or an OpenAPI document that does not say), the
    guide's body is sent as it is.
    """

    _process_token = secrets.token_hex(3)

    def __init__(self, routes: Routes, user_id: str) -> None:
        self._rules = {r.name: r for r in routes.agent_fields}
        digest = hashlib.sha1(f"{user_id}:{self._process_token}".encode()).hexdigest()[:12]
        self._stem = f"lt-{digest}"
        self._counter = itertools.count(1)

    def next(self) -> dict[str, Any]:
        n = next(self._counter)
        body = dict(AGENT_BASE_BODY)
        body["name"] = f"loadtest agent {self._stem[3:]}-{n}"
        if not self._rules:
            return body
        body = {k: v for k, v in body.items() if k in self._rules}
        for rule in self._rules.values():
            if rule.required and rule.name not in body:
                body[rule.name] = self._fill(rule, n)
        return {k: self._fit(self._rules[k], v) for k, v in body.items()}

    def _fill(self, rule: FieldRule, n: int) -> Any:
        if rule.choices:
            return rule.choices[0]
        if rule.kind == "integer":
            return int(_number(rule, 1))
        if rule.kind == "number":
            return float(_number(rule, 1.0))
        if rule.kind == "boolean":
            return True
        if rule.kind == "array":
            return []
        if rule.kind == "object":
            return {}
        return _slug_text(self._stem, n, rule)

    @staticmethod
    def _fit(rule: FieldRule, value: Any) -> Any:
        if rule.choices and value not in rule.choices:
            return rule.choices[0]
        if rule.kind == "string" and isinstance(value, str):
            return _fit_string(value, rule)
        if rule.kind in ("integer", "number") and isinstance(value, int | float) and not isinstance(value, bool):
            fitted = _number(rule, float(value))
            return int(fitted) if rule.kind == "integer" else fitted
        return value
