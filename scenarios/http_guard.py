"""Reading a platform's answers safely: bounded time, bounded bodies, no redirects, checked tokens.

A load generator must survive a platform that answers badly, whether broken or hostile,
and count every such answer as a failure with a reason instead of raising out of a user
(Locust's exit code 2) or eating the load generator's memory.  ``guarded_request`` sends
one request through the user's ``FastHttpSession`` and returns a ``GuardedAnswer``:

* **one deadline for the whole exchange** (``--request-timeout``): connecting, the
  headers and the body, however slowly they drip.  geventhttpclient's own timeouts apply
  per socket operation, so an answer that sends a byte a second never trips them;
* **bodies read in bounded pieces** (``stream=True``), at most ``MAX_BODY_BYTES`` after
  decompression: a gzip or deflate body is inflated incrementally with a cap (a 1 MB gzip
  bomb stops at the cap, it is never inflated to 1 GB); an encoding the toolkit did not ask
  for (``br``, ``compress``) is a failure;
* **JSON parsed without raising**: not JSON, not UTF-8, or nested too deep for Python's
  parser (``RecursionError``) is ``None`` with a reason, never an exception;
* **redirects are never followed** (the users set ``max_redirects = 0``): a login that
  answers 3xx could make the client re-send the credentials to another origin, and an API
  call redirected elsewhere measures someone else.  A 3xx is a failure whose reason says
  whether it pointed to another origin or to another path of the same one (then the
  platform's paths differ from the routes: pass ``--routes``);
* **headers are bounded** (``MAX_HEADER_BYTES`` per answer): geventhttpclient's parser
  grows a header without limit (and quadratically, by string concatenation), and data
  that keeps arriving on loopback never yields to gevent's hub, so no deadline could stop
  it; ``bound_header_parsing`` makes the parser fail such an answer (``HTTPParseError``,
  a failure like any broken answer);
* **bearer tokens are checked** against RFC 6750's token characters and a length limit
  before they go into a header: a token carrying CR/LF or spaces would otherwise make
  every later request raise (or inject headers).

Where a request fails this way, the answer is still recorded in Locust's statistics,
under the request's own name, with the reason as its error.
"""

from __future__ import annotations

import json
import re
import time
import zlib
from typing import Any
from urllib.parse import urlsplit

import gevent
from geventhttpclient.response import HTTPParseError, HTTPResponse
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TOKEN_CHARS",
    "GuardedAnswer",
    "RequestTimedOut",
    "bearer_token_problem",
    "bound_header_parsing",
    "guarded_request",
    "redirect_reason",
]

MAX_BODY_BYTES = 8 * 1024 * 1024
"""The most body a load-test answer may have (after decompression); a list page is kilobytes."""
MAX_HEADER_BYTES = 256 * 1024
"""The most header bytes (names and values, interim answers included) one answer may have."""
MAX_TOKEN_CHARS = 16 * 1024
"""The longest bearer token accepted (a JWT is a few hundred characters)."""
READ_CHUNK = 64 * 1024
_CALLBACK_COST = 16
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ENCODINGS = {"", "identity", "gzip", "x-gzip", "deflate"}


def bound_header_parsing(limit: int = MAX_HEADER_BYTES) -> bool:
    """Make geventhttpclient's response parser refuse answers with more than ``limit`` header bytes.

    Its parser hands the status line, header names and values and each message start to
    Python callbacks; they are wrapped (once per process) to count the bytes (plus a fixed
    cost per call, so that endless empty headers or interim 1xx answers count too) and
    raise ``HTTPParseError`` past the limit, which the parser turns into a failed answer.
    Returns False when this version of geventhttpclient has no such callbacks (nothing is
    changed then).
    """
    if getattr(HTTPResponse, "_loadkit_header_limit", None) is not None:
        return True
    names = ("_on_status", "_on_message_begin", "_on_header_field", "_on_header_value")
    originals = {name: getattr(HTTPResponse, name, None) for name in names}
    if any(not callable(f) for f in originals.values()):
        return False

    def counted(original: Any) -> Any:
        def callback(self: Any, *args: Any) -> Any:
            seen = self.__dict__.get("_loadkit_header_bytes", 0) + _CALLBACK_COST + sum(len(a) for a in args)
            self.__dict__["_loadkit_header_bytes"] = seen
            if seen > limit:
                raise HTTPParseError(f"more than {limit // 1024} KiB of headers")
            return original(self, *args)

        return callback

    for name, original in originals.items():
        setattr(HTTPResponse, name, counted(original))
    HTTPResponse._loadkit_header_limit = limit  # type: ignore[attr-defined]
    return True


bound_header_parsing()


class RequestTimedOut(Exception):
    """The whole exchange took longer than ``--request-timeout`` (the error Locust records)."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


def redirect_reason(code: int, location: str | None, base_url: str | None) -> str:
    """Why a 3xx answer is a failure, naming where it pointed (origin only: a path may carry secrets)."""
    if not location:
        return f"HTTP {code} redirect without a Location, not followed"
    target = urlsplit(location)
    if not target.scheme and not target.netloc:  # relative: same origin
        return f"HTTP {code} redirect to {target.path or '/'} on the same origin, not followed (see --routes)"
    if base_url and _origin(location) == _origin(base_url):
        return f"HTTP {code} redirect to {target.path or '/'} on the same origin, not followed (see --routes)"
    scheme, host, port = _origin(location)
    where = f"{scheme}://{host}:{port}" if host else repr(location[:40])
    return f"HTTP {code} redirect to another origin ({where}), not followed"


def bearer_token_problem(token: object) -> str | None:
    """None if ``token`` may go into an ``Authorization: Bearer`` header, else why not."""
    if not isinstance(token, str) or not token:
        return "is missing or empty"
    if len(token) > MAX_TOKEN_CHARS:
        return f"is longer than {MAX_TOKEN_CHARS} characters"
    if not _TOKEN.fullmatch(token):
        return "holds characters a bearer token may not carry (RFC 6750), such as CR, LF or spaces"
    return None


class GuardedAnswer:
    """One answer, its body already read within the limits; judged by the caller, reported on exit.

    Use as ``with answer:`` like Locust's response context manager: ``success()`` or
    ``failure(reason)`` decide how it is recorded; ``problem`` (set when the body could
    not be read within the limits, or no answer came in time) should be the failure.
    """

    def __init__(self, resp: Any, body: bytes, problem: str | None, request_meta: dict[str, Any] | None) -> None:
        self._resp = resp
        self.body = body
        self.problem = problem
        self._meta = request_meta  # reported by us when there is no response object (timed out before headers)
        self._outcome: str | None = None
        self._doc: Any = None
        self._parsed = False

    @property
    def status_code(self) -> int:
        return int(getattr(self._resp, "status_code", 0) or 0) if self._resp is not None else 0

    @property
    def headers(self) -> Any:
        return getattr(self._resp, "headers", None) or {}

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` if it is not JSON (or nested too deep to parse)."""
        if not self._parsed:
            self._parsed = True
            try:
                self._doc = json.loads(self.body)
            except (ValueError, RecursionError, TypeError) as exc:
                self._doc = exc if isinstance(exc, ValueError) else ValueError("JSON nested too deep")
        if isinstance(self._doc, ValueError):
            raise self._doc
        return self._doc

    def success(self) -> None:
        self._outcome = None
        if self._resp is not None:
            self._resp.success()

    def failure(self, reason: str) -> None:
        self._outcome = reason
        if self._resp is not None:
            self._resp.failure(reason)

    def __enter__(self) -> GuardedAnswer:
        if self._resp is not None:
            self._resp.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self._resp is not None:
            return bool(self._resp.__exit__(*exc))
        if self._meta is not None:
            meta, self._meta = self._meta, None
            meta["exception"] = RequestTimedOut(self._outcome or self.problem or "no answer")
            events = meta.pop("_events")
            events.request.fire(**meta)
        return exc[0] is None


def _inflater(encoding: str) -> Any:
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(32 + zlib.MAX_WBITS)  # zlib-wrapped (what the RFC says) or gzip
    return None


def _read_body(resp: Any, limit: int) -> tuple[bytes, str | None]:
    """The body, at most ``limit`` bytes after decompression; a reason instead when it cannot be had."""
    headers = getattr(resp, "headers", None)
    if headers is None or not getattr(resp, "status_code", 0):
        return b"", None  # no answer at all: Locust records the connection error itself
    encoding = str(headers.get("content-encoding") or "").strip().lower()
    if encoding not in _ENCODINGS:
        return b"", f"HTTP {resp.status_code} with Content-Encoding {encoding[:20]!r}, which was not asked for"
    inflate = _inflater(encoding)
    pieces: list[bytes] = []
    raw = size = 0
    try:
        while True:
            chunk = resp.read(READ_CHUNK)
            if not chunk:
                break
            raw += len(chunk)
            if inflate is not None:
                chunk = inflate.decompress(chunk, limit + 1 - size)
                if inflate.unconsumed_tail:
                    size = limit + 1
            size += len(chunk)
            if size > limit or raw > limit:
                return b"", f"HTTP {resp.status_code} with a body over {limit // (1024 * 1024)} MiB, not read further"
            pieces.append(chunk)
        if inflate is not None:
            tail = inflate.flush()
            if size + len(tail) > limit:
                return b"", f"HTTP {resp.status_code} with a body over {limit // (1024 * 1024)} MiB, not read further"
            pieces.append(tail)
            if raw and not inflate.eof:
                return b"", f"HTTP {resp.status_code} with a truncated {encoding} body"
    except zlib.error:
        return b"", f"HTTP {resp.status_code} with a body that is not valid {encoding}"
    except FAILURE_EXCEPTIONS as exc:
        return b"", f"HTTP {resp.status_code} whose body broke off ({exc.__class__.__name__})"
    finally:
        release = getattr(resp, "release", None)
        if release is not None:
            release()  # an unfinished message closes its connection; a finished one returns it to the pool
    return b"".join(pieces), None


def guarded_request(
    user: Any, method: str, path: str, *, name: str, timeout: float, limit: int = MAX_BODY_BYTES, **kwargs: Any
) -> GuardedAnswer:
    """Send one request through ``user.client`` with one deadline for the whole exchange and a bounded body."""
    started = time.perf_counter()
    start_time = time.time()
    deadline = gevent.Timeout(timeout, RequestTimedOut())
    deadline.start()
    resp = None
    try:
        resp = user.client.request(method, path, name=name, catch_response=True, stream=True, **kwargs)
        body, problem = _read_body(resp, limit)
    except RequestTimedOut:
        body, problem = b"", f"timed out: no complete answer within {timeout:g} s (--request-timeout)"
    finally:
        deadline.close()
    elapsed_ms = (time.perf_counter() - started) * 1000
    meta = getattr(resp, "request_meta", None)
    if resp is not None and isinstance(meta, dict):
        meta["response_time"] = elapsed_ms  # headers and body, as Locust measures without stream=True
        meta["response_length"] = len(body)
        answer = GuardedAnswer(resp, body, problem, None)
    else:
        base = getattr(user.client, "base_url", "") or ""
        report = {
            "request_type": method,
            "name": name,
            "response_time": elapsed_ms,
            "response_length": 0,
            "response": None,
            "context": user.context(),
            "start_time": start_time,
            "url": base + path,
            "_events": user.environment.events,
        }
        answer = GuardedAnswer(None, b"", problem, report)
    return answer
