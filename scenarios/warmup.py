"""The warm-up before users spawn, and the pre-flight check of the platform's rate limit.

Warm-up: one login (with the pool's first account) and one list of agents, made by the
master or the local runner, outside Locust's statistics.  The platform's code can hang
for good when its first requests arrive concurrently right after a start; one request
first avoids it.  The warm-up is bounded by ``--warm-up-timeout``: until then a
connection that is refused or dropped is tried again (a platform still starting); when
no HTTP answer came at all, the run stops before any load with one sentence and exit
code 16 (``PlatformUnresponsive``).  An HTTP answer that is not a success is reported
and the run goes on: the users' own requests will show what is wrong, per endpoint.

Pre-flight: the warm-up's answers carry the limiter's ``X-RateLimit-Limit`` and
``X-RateLimit-Reset`` when the platform limits.  The planned load (users, think time,
the task weights and the list's latency) gives the busiest endpoint's rate; when that
exceeds the limit, a warning says so before anything spawns.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from agentic_loadkit.provisioning.errors import PlatformUnresponsive
from agentic_loadkit.provisioning.runs.poolfile import CredentialRow

from .dialects import login_request, rate_limit_refusal, token_from
from .http_guard import bearer_token_problem
from .probe_http import Answer, fetch
from .routes import Routes

__all__ = ["LimitSeen", "WarmUp", "preflight_warnings", "warm_up"]

RETRY_PAUSE_S = 0.5


@dataclass(frozen=True)
class LimitSeen:
    """A rate limit an answer announced: requests allowed per window of ``window_s`` seconds."""

    path: str
    limit: int
    remaining: int | None
    window_s: float

    @property
    def per_second(self) -> float:
        return self.limit / self.window_s


@dataclass
class WarmUp:
    """What the warm-up saw (stored in the results JSON)."""

    login_status: int = 0
    login_s: float = 0.0
    list_status: int = 0
    list_s: float = 0.0
    user_id: str | None = None
    limits: list[LimitSeen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "limits": [asdict(x) for x in self.limits]}


def _limit_of(path: str, answer: Answer, now: float) -> LimitSeen | None:
    raw = answer.header("X-RateLimit-Limit")
    try:
        limit = int(str(raw).split(",")[0].strip().split(";")[0]) if raw else 0
    except ValueError:
        return None
    if limit <= 0:
        return None
    try:
        remaining: int | None = int(str(answer.header("X-RateLimit-Remaining")).strip())
    except ValueError:
        remaining = None
    try:
        reset = float(str(answer.header("X-RateLimit-Reset")).strip())
    except ValueError:
        reset = 0.0
    window = reset - now if reset > 1e9 else reset  # an epoch, or seconds until the reset
    return LimitSeen(path, limit, remaining, window if 1.0 <= window <= 3600.0 else 60.0)


def _until_answered(url: str, deadline: float, **kwargs: Any) -> Answer:
    """The request, tried again while nothing answers (refused, dropped, timed out), until ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        answer = fetch(url, timeout=max(0.5, left), **kwargs)
        if answer.answered or time.monotonic() + RETRY_PAUSE_S >= deadline:
            return answer
        time.sleep(RETRY_PAUSE_S)


def warm_up(host: str, routes: Routes, account: CredentialRow, *, timeout: float) -> WarmUp:
    """One login and one list; ``PlatformUnresponsive`` when the platform gave no HTTP answer in time."""
    base = host.rstrip("/")
    deadline = time.monotonic() + timeout
    result = WarmUp(user_id=account.user_id)
    body, headers = login_request(routes, account.email, account.password)
    login = _until_answered(base + routes.login, deadline, method="POST", body=body.encode(), headers=headers)
    if not login.answered:
        raise PlatformUnresponsive(
            f"The platform at {host} did not answer the warm-up login (POST {routes.login}) within {timeout:g} s "
            f"({login.error}); is it up, and is --host right?"
        )
    result.login_status, result.login_s = login.status, login.elapsed_s
    if (seen := _limit_of(routes.login, login, time.time())) is not None:
        result.limits.append(seen)
    token = token_from(login.json(), routes) if login.ok else None
    if token is not None and (problem := bearer_token_problem(token)) is not None:
        result.problems.append(f"the warm-up login (POST {routes.login}) gave a token that {problem}")
        return result
    if token is None:
        refusal = rate_limit_refusal(login.status, login.headers)
        result.problems.append(
            f"the warm-up login (POST {routes.login}) answered "
            + (login.error or "badly" if login.malformed else f"HTTP {login.status}")
            + (f", {refusal}" if refusal else "")
            + (f" without the '{routes.token_field}' field" if login.ok else "")
        )
        return result
    listing = _until_answered(base + routes.agents, deadline, headers={"Authorization": f"Bearer {token}"})
    if not listing.answered:
        raise PlatformUnresponsive(
            f"The platform at {host} did not answer the warm-up list (GET {routes.agents}) within {timeout:g} s "
            f"({listing.error}), after its login answered."
        )
    result.list_status, result.list_s = listing.status, listing.elapsed_s
    if (seen := _limit_of(routes.agents, listing, time.time())) is not None:
        result.limits.append(seen)
    if not listing.ok:
        what = listing.error if listing.malformed else f"HTTP {listing.status}"
        result.problems.append(f"the warm-up list (GET {routes.agents}) answered with {what}")
    return result


def preflight_warnings(
    warm: WarmUp, *, login_path: str, users: int, wait_mean_s: float, busiest_share: float, dialect: str
) -> list[str]:
    """Warnings when the limits the warm-up saw are smaller than the planned load's busiest rate."""
    warnings: list[str] = []
    latency = max(warm.list_s, 0.002)
    per_user = 1.0 / (wait_mean_s + latency)
    scope = ("per client IP and path, and it cannot be turned off by configuration"
             if dialect == "v1" else "per client, as the platform counts it")
    for seen in warm.limits:
        is_login = seen.path == login_path
        planned = users / seen.window_s if is_login else users * per_user * busiest_share
        if planned <= seen.per_second:
            continue
        what = (f"{users} logins in the first {seen.window_s:.0f} s" if is_login
                else f"about {planned * seen.window_s:,.0f} requests per {seen.window_s:.0f} s")
        warnings.append(
            f"pre-flight: the platform's rate limiter allows {seen.limit} requests per {seen.window_s:.0f} s on "
            f"{seen.path} ({scope}), and the planned load makes {what} there: most answers will be refused "
            f"and the run will measure the limiter, not the API."
        )
    return warnings

