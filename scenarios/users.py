"""The simulated users: each one a distinct provisioned user of a real tenant.

``AgenticBaseUser`` (abstract, on ``FastHttpUser``, which costs the load generator
less per request than ``HttpUser``) does the session work:

* ``on_start`` checks one account out of the credentials pool (see ``pool.py``) and
  logs in as the platform's dialect says (a form or JSON, from the discovered routes;
  ``dialects.py`` builds the bodies and reads the answers); the bearer token is kept;
* a 401 on any call means the token expired or was revoked: the user logs in again
  ONCE and retries the call (re-logins are recorded as ``<login path> (re-login)``;
  the expired answer itself is not recorded, the retried call is).  A 401 for a token
  that was never accepted (a platform that refuses the tokens it issues) is a failure
  and backs off like a failed login, so it never loops logins;
* a failed login is retried at a later task, after a back-off (1 s doubling to 30 s),
  so that a platform whose logins fail is not flooded with bcrypt work;
* ``on_stop`` hands the account back.  A user that got no account (the pool ran dry)
  ends quietly at its first task.

Every answer is judged, never trusted: a status other than the expected one, a rate
limiter's refusal (a 429, or any refusal with ``X-RateLimit-Remaining: 0``: counted and
explained by the gate), a redirect (never followed), a body that is not
JSON or too large, a list without its items, a timeout or a dropped connection is a
failure in Locust's statistics, and the user carries on (``http_guard.py`` reads the
answers within a deadline and a size cap).  A 401 right after a fresh login backs off
like a failed login.  No exception escapes a user: a platform misbehaving under load must
not kill greenlets (Locust's exit code 2).

A scenario is a subclass of ``AgenticBaseUser`` with its own ``tasks`` (the guide's
two users below; the isolation probe in ``isolation.py``).  Class attributes a subclass
may change: ``probe`` (ask the pool for other tenants'
ids too), ``max_known_agents`` (how many agent ids a user remembers),
``login_backoff_s`` (first and longest wait after a failed login), and the task
weights in ``tasks``.  Per instance: ``lease`` (the account and ids) and ``routes``.
Think time comes from ``--wait-time``, the request timeout from ``--request-timeout``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from agentic_loadkit.provisioning.errors import CredentialsError, InputError
from locust import FastHttpUser
from locust.env import Environment
from locust.exception import StopUser

from .broker import Lease
from .dialects import AgentPayloads, login_request, rate_limit_refusal, token_from
from .figures import ISOLATION_BREACH
from .http_guard import bearer_token_problem, guarded_request, redirect_reason
from .options import DEFAULT_WAIT_TIME, parse_wait_time
from .pool import pool_client_for
from .routes import RELOGIN_SUFFIX, Routes

__all__ = ["FRESH_TOKEN_REFUSED", "AgenticBaseUser", "AgenticPlatformUser", "ReadOnlyUser", "warn_once"]

log = logging.getLogger(__name__)

FRESH_TOKEN_REFUSED = "HTTP 401 for a freshly issued token (the platform refuses its own tokens); logins back off"
_warned: set[str] = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class AgenticBaseUser(FastHttpUser):
    """A user holding one pooled account and its bearer token; tasks are defined by subclasses."""

    abstract = True
    probe: ClassVar[bool] = False
    """Ask the pool for other tenants' object ids too (the isolation probe)."""
    max_known_agents: ClassVar[int] = 200
    """Agent ids a user remembers (the manifest's, plus those it creates)."""
    login_backoff_s: ClassVar[tuple[float, float]] = (1.0, 30.0)
    """After a failed login, wait this long (doubling up to the maximum) before the next try:
    a platform whose logins fail must not be flooded with bcrypt work by the load generator."""
    max_redirects = 0
    """Never follow a redirect: a redirected login would re-send the credentials elsewhere."""

    def __init__(self, environment: Environment) -> None:
        opts = environment.parsed_options
        timeout = float(getattr(opts, "request_timeout", 10.0) or 10.0)
        self.network_timeout = timeout
        self.connection_timeout = timeout
        self._timeout = timeout
        super().__init__(environment)
        try:
            low, high = parse_wait_time(getattr(opts, "wait_time", DEFAULT_WAIT_TIME) or DEFAULT_WAIT_TIME)
        except InputError:
            low, high = parse_wait_time(DEFAULT_WAIT_TIME)
        self._wait_min = low
        self._wait_span = high - low
        self.lease: Lease | None = None
        self.routes = Routes()
        self._auth: dict[str, str] | None = None
        self._agent_ids: list[str] = []
        self._login_failures = 0
        self._next_login_at = 0.0
        self._token_accepted = False
        self._payloads: AgentPayloads | None = None

    def wait_time(self) -> float:
        return self._wait_min + self._wait_span * random.random()

    # -- session ---------------------------------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.lease = pool_client_for(self.environment).checkout(probe=self.probe)
        except CredentialsError as exc:
            warn_once(f"A simulated user got no account and stays idle: {exc}")
            return
        except Exception as exc:  # never let on_start kill the greenlet (the account would leak)
            warn_once(f"A simulated user got no account and stays idle ({exc.__class__.__name__}: {exc}).")
            return
        self.routes = self.lease.routes
        self._agent_ids = list(self.lease.agents)
        self._payloads = AgentPayloads(self.routes, self.lease.account.user_id)
        self.login(relogin=False)

    def on_stop(self) -> None:
        lease, self.lease = self.lease, None
        self._auth = None
        if lease is not None:
            try:
                pool_client_for(self.environment).checkin(lease)
            except Exception as exc:
                warn_once(f"An account could not be handed back to the pool ({exc.__class__.__name__}).")

    def login(self, *, relogin: bool) -> bool:
        """Log in with the lease's account; True when a token was obtained."""
        assert self.lease is not None
        routes = self.routes
        account = self.lease.account
        body, headers = login_request(routes, account.email, account.password)
        name = routes.login + RELOGIN_SUFFIX if relogin else routes.login
        self._auth = None
        with self._request("POST", routes.login, name, data=body, headers=headers) as resp:
            code = resp.status_code
            if resp.problem:
                resp.failure(f"login failed: {resp.problem}")
            elif code == 200:
                rate_limit_refusal(code, resp.headers, routes.login)  # note the budget left
                token = None
                try:
                    doc = resp.json()
                    token = token_from(doc, routes)
                except ValueError:
                    doc = None
                problem = bearer_token_problem(token)
                if problem is None:
                    self._auth = {"Authorization": f"Bearer {token}"}
                    self._token_accepted = False  # the back-off resets once a request accepts the token
                    resp.success()
                    return True
                if doc is None:
                    resp.failure("login answered 200 with a body that is not JSON")
                elif token is None:
                    resp.failure(f"login answered 200 without the '{routes.token_field}' field")
                else:
                    resp.failure(f"login answered 200 with a '{routes.token_field}' that {problem}; not used")
            elif 300 <= code < 400:
                location = resp.headers.get("location")
                reason = redirect_reason(code, location, self.host)
                resp.failure(f"login refused: {reason}; credentials go only to --host")
            elif refusal := rate_limit_refusal(code, resp.headers, routes.login):
                resp.failure(refusal)
            elif code:
                resp.failure(f"login refused: HTTP {code}")
        self._back_off()
        return False

    def _back_off(self) -> None:
        """No login (and no request) until the back-off has passed: 1 s, doubling up to 30 s."""
        self._auth = None
        self._login_failures += 1
        first, longest = self.login_backoff_s
        self._next_login_at = time.monotonic() + min(longest, first * 2 ** min(self._login_failures - 1, 30))

    def _request(self, method: str, path: str, name: str, **kwargs: Any) -> Any:
        return guarded_request(self, method, path, name=name, timeout=self._timeout, **kwargs)

    # -- requests --------------------------------------------------------------------------------

    def _send(self, method: str, path: str, name: str, body: Any, auth: bool) -> Any:
        return self._request(method, path, name, headers=self._auth if auth else None, json=body)

    def call(
        self,
        method: str,
        path: str,
        name: str,
        *,
        body: Any = None,
        expect: Sequence[int] = (200,),
        list_key: str | None = None,
        breach_on: Sequence[int] = (),
        auth: bool = True,
    ) -> Any:
        """Make one request, judge the answer and return its JSON (None on failure or non-2xx)."""
        if auth and self._auth is None:
            if self.lease is None:
                raise StopUser()  # no account: this user ends quietly
            if time.monotonic() < self._next_login_at or not self.login(relogin=True):
                return None  # the last login failed: no request until the back-off has passed
        resp = self._send(method, path, name, body, auth)
        if auth and resp.status_code == 401 and self._token_accepted:
            if self.login(relogin=True):
                resp = self._send(method, path, name, body, auth)
            else:
                with resp:
                    resp.failure("HTTP 401, and logging in again failed")
                return None
        if auth and resp.status_code and resp.status_code != 401:
            self._token_accepted = True
            self._login_failures = 0
        with resp:
            return self._judge(resp, expect, list_key, breach_on, path_name=name, path=path)

    def _judge(
        self,
        resp: Any,
        expect: Sequence[int],
        list_key: str | None,
        breach_on: Sequence[int],
        path_name: str,
        path: str | None = None,
    ) -> Any:
        code = resp.status_code
        if resp.problem:
            resp.failure(resp.problem)
            return None
        if code in breach_on:
            resp.failure(f"{ISOLATION_BREACH}: {path_name} answered {code} for another tenant's object")
            return None
        if code in expect:
            if not 200 <= code < 300:
                resp.success()
                return None
            try:
                doc = resp.json()
            except ValueError:
                resp.failure(f"HTTP {code} with a body that is not JSON")
                return None
            if list_key is not None and not (isinstance(doc, dict) and isinstance(doc.get(list_key), list)):
                resp.failure(f"HTTP {code} without the '{list_key}' list")
                return None
            rate_limit_refusal(code, resp.headers, path)  # note the budget left
            resp.success()
            return doc
        if refusal := rate_limit_refusal(code, resp.headers, path):
            resp.failure(refusal)
        elif code == 401:
            resp.failure(FRESH_TOKEN_REFUSED)
            self._back_off()
        elif 300 <= code < 400:
            resp.failure(redirect_reason(code, resp.headers.get("location"), self.host))
        elif code:
            resp.failure(f"HTTP {code}")
        # code 0: a connection error or timeout, recorded by Locust from the response's error
        return None

    # -- the guide's tasks -----------------------------------------------------------------------

    def list_agents(self) -> None:
        r = self.routes
        self.call("GET", r.agents, r.agents, list_key=r.agents_key)

    def get_agent(self) -> None:
        r = self.routes
        if not self._agent_ids:
            # the manifest knew no agent of this tenant: learn ids from a list (named apart)
            doc = self.call("GET", r.agents, r.agents + " (id lookup)", list_key=r.agents_key)
            items = doc.get(r.agents_key, []) if isinstance(doc, dict) else []
            self._agent_ids = [str(i["id"]) for i in items if isinstance(i, dict) and "id" in i][
                : self.max_known_agents
            ]
            if not self._agent_ids:
                return
        self.call("GET", r.agent_path(random.choice(self._agent_ids)), r.agent)

    def create_agent(self) -> None:
        r = self.routes
        if self._payloads is None:
            self._payloads = AgentPayloads(r, self.lease.account.user_id if self.lease else "")
        doc = self.call("POST", r.agents, r.agents, body=self._payloads.next(), expect=(200, 201))
        if isinstance(doc, dict) and doc.get("id") is not None and len(self._agent_ids) < self.max_known_agents:
            self._agent_ids.append(str(doc["id"]))

    def list_workflows(self) -> None:
        r = self.routes
        self.call("GET", r.workflows, r.workflows, list_key=r.workflows_key)

    def list_collections(self) -> None:
        r = self.routes
        self.call("GET", r.collections, r.collections, list_key=r.collections_key)

    def list_mcp_servers(self) -> None:
        r = self.routes
        self.call("GET", r.mcp_servers, r.mcp_servers, list_key=r.mcp_servers_key)

    def health(self) -> None:
        if self.lease is None:
            raise StopUser()  # no account: this user ends quietly
        r = self.routes
        with self._request("GET", r.health, r.health) as resp:
            if resp.problem:
                resp.failure(resp.problem)
            elif resp.status_code == 200:
                resp.success()
            elif 300 <= resp.status_code < 400:
                resp.failure(redirect_reason(resp.status_code, resp.headers.get("location"), self.host))
            elif resp.status_code:
                resp.failure(f"HTTP {resp.status_code}")


class AgenticPlatformUser(AgenticBaseUser):
    """The guide's mixed user: agents 10, get agent 5, create agent 3, workflows 8, collections 5, MCP 2, health 1."""

    # Locust's metaclass turns this {task: weight} dict into its task list
    tasks = {  # type: ignore[assignment]  # noqa: RUF012
        AgenticBaseUser.list_agents: 10,
        AgenticBaseUser.get_agent: 5,
        AgenticBaseUser.create_agent: 3,
        AgenticBaseUser.list_workflows: 8,
        AgenticBaseUser.list_collections: 5,
        AgenticBaseUser.list_mcp_servers: 2,
        AgenticBaseUser.health: 1,
    }


class ReadOnlyUser(AgenticBaseUser):
    """The guide's read-only user: agents 20, workflows 10, collections 5."""

    tasks = {  # type: ignore[assignment]  # noqa: RUF012
        AgenticBaseUser.list_agents: 20,
        AgenticBaseUser.list_workflows: 10,
        AgenticBaseUser.list_collections: 5,
    }
