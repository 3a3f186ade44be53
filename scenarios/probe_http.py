"""Bounded HTTP requests the master makes outside the load: discovery, warm-up, ``/metrics`` scrapes.

They are not Locust requests (nothing here enters Locust's statistics), and they must
never hang a run or wander off: every request has a timeout, a body cap, and follows a
redirect only within the origin it was sent to (scheme, host and port), at most a few
times.  A redirect to another origin is not followed; it is reported as such.  Under
Locust, gevent's patched sockets make these calls cooperative, so a scrape never blocks
the master's other greenlets.

Errors are values (``Answer.error``), never exceptions: the callers turn them into one
sentence.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = ["Answer", "fetch", "same_origin"]

MAX_REDIRECTS = 3
DEFAULT_BODY_CAP = 8 * 1024 * 1024


def same_origin(a: str, b: str) -> bool:
    """True when both URLs have the same scheme, host and port."""
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)


@dataclass(frozen=True)
class Answer:
    """What one request got: a status (0 when there was no HTTP answer), headers, body, or an error."""

    url: str
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    elapsed_s: float = 0.0
    malformed: bool = False  # something answered, but not with HTTP

    @property
    def answered(self) -> bool:
        return bool(self.status) or self.malformed

    @property
    def ok(self) -> bool:
        return self.error is None and 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON; ``None`` when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by ``fetch`` itself, so that each hop's origin is checked."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _read(resp: Any, cap: int, keep: Callable[[bytes], bool] | None = None) -> tuple[bytes, bool]:
    """The body (only the lines ``keep`` accepts, when given), and whether more than ``cap`` bytes came."""
    if keep is None:
        body = resp.read(cap + 1)
        return body[:cap], len(body) > cap
    kept: list[bytes] = []
    seen = 0
    for line in resp:
        seen += len(line)
        if seen > cap:
            return b"".join(kept), True
        if keep(line):
            kept.append(line)
    return b"".join(kept), False


def fetch(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    body_cap: int = DEFAULT_BODY_CAP,
    keep_lines: Callable[[bytes], bool] | None = None,
) -> Answer:
    """One request (and same-origin redirects of a GET), bounded by ``timeout`` per hop and ``body_cap``.

    ``keep_lines`` streams a long text answer and keeps only the lines it accepts (the cap
    then counts every byte read)."""
    start = time.monotonic()
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        request = urllib.request.Request(current, data=body, method=method, headers=headers or {})
        try:
            with _OPENER.open(request, timeout=timeout) as resp:
                data, cut = _read(resp, body_cap, keep_lines if 200 <= resp.status < 300 else None)
                status, raw_headers = resp.status, resp.headers
        except urllib.error.HTTPError as exc:
            status, raw_headers = exc.code, exc.headers
            try:
                data, cut = _read(exc, body_cap)
            except (OSError, ValueError):
                data, cut = b"", False
        except http.client.HTTPException as exc:  # an answer, but not HTTP (garbage, endless headers)
            return Answer(current, error=f"a malformed answer ({type(exc).__name__}: {str(exc)[:120]})",
                          elapsed_s=time.monotonic() - start, malformed=True)
        except (TimeoutError, urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            text = "timed out" if isinstance(reason, TimeoutError) else str(reason) or type(exc).__name__
            return Answer(current, error=f"no answer ({text})", elapsed_s=time.monotonic() - start)
        hdrs = {k.lower(): v for k, v in (raw_headers or {}).items()}
        elapsed = time.monotonic() - start
        if status in (301, 302, 303, 307, 308) and "location" in hdrs and method == "GET":
            target = urljoin(current, hdrs["location"])
            if not same_origin(url, target):
                return Answer(current, status, hdrs, b"", f"redirected to another origin ({target}), not followed",
                              elapsed)
            current = target
            continue
        if cut:
            return Answer(current, status, hdrs, data, f"answer larger than {body_cap} bytes", elapsed)
        return Answer(current, status, hdrs, data, None, elapsed)
    return Answer(current, error=f"more than {MAX_REDIRECTS} redirects", elapsed_s=time.monotonic() - start)
