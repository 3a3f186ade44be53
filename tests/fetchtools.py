"""One HTTP request from a test to a server it started (the reference platform, Locust's web UI).

Tests that need a session (a base URL, cookies, many calls) use ``httpx.Client``
directly; a single request goes through ``fetch``, so that every one has a timeout
and none follows a redirect.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["fetch"]


def fetch(
    url: str, *, form: dict[str, Any] | None = None, json: Any = None, timeout: float = 5.0
) -> httpx.Response:
    """GET ``url``, or POST it a form (``form``) or a JSON document (``json``); the response, whatever its status.

    Connection failures raise ``httpx.TransportError``.
    """
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        if form is None and json is None:
            return client.get(url)
        return client.post(url, data=form, json=json)
