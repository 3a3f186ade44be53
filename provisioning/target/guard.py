"""The remote guard: this toolkit writes and deletes test data, so a target any of whose hosts
is not certainly this machine is refused unless remote targets are allowed (``--allow-remote``
or ``PROVISION_ALLOW_REMOTE=1``).  It judges exactly the hosts ``connect_kwargs`` hands the
driver, after ``url`` has parsed them.  It never opens a socket (names are resolved with
``getaddrinfo``, which for names under ``.invalid`` fails locally)."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Mapping

from ..errors import RemoteTargetRefused
from .url import DatabaseTarget

__all__ = ["check_remote_allowed", "is_loopback_host", "remote_allowed_by_env"]


def _ip_is_loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def is_loopback_host(host: str, *, resolve: bool = True) -> bool:
    """True when ``host``, exactly as the driver will get it, is certainly this machine: a Unix socket
    directory, a loopback IP literal, ``localhost``, or a name whose every resolved address is loopback.

    Anything else (a name that does not resolve, a private or public address, the unspecified
    address ``0.0.0.0``/``::``) is remote.  A trailing dot is kept: ``localhost.`` is a DNS name,
    decided by what it resolves to.  With ``resolve=False`` names other than ``localhost`` are
    treated as remote without a lookup.
    """
    if not host:
        return False
    if host.startswith("/") or host.startswith("@"):
        return True  # a Unix socket directory (or abstract socket): local by construction
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if "%" in bare:  # IPv6 zone id: never loopback-only
        return False
    try:
        return _ip_is_loopback(ipaddress.ip_address(bare))
    except ValueError:
        pass
    name = bare.lower()
    if name == "localhost":
        return True
    if not resolve:
        return False
    if name.rstrip(".").endswith(".invalid") or name.rstrip(".") == "invalid":
        return False  # RFC 2606: never resolves; decided without a lookup
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    if not infos:
        return False
    for info in infos:
        addr = str(info[4][0])
        try:
            if "%" in addr or not _ip_is_loopback(ipaddress.ip_address(addr)):
                return False
        except ValueError:
            return False
    return True


def remote_allowed_by_env(env: Mapping[str, str] | None = None) -> bool:
    value = (env if env is not None else os.environ).get("PROVISION_ALLOW_REMOTE", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def check_remote_allowed(target: DatabaseTarget, *, allow_remote: bool = False) -> None:
    """Refuse a target any of whose hosts (exactly those ``connect_kwargs`` hands the driver) is not
    loopback, unless remote targets are allowed."""
    if allow_remote or remote_allowed_by_env():
        return
    if target.implicit_host and target.pgservice:
        raise RemoteTargetRefused(
            f"Refusing to touch {target.masked}: PGSERVICE names the service {target.pgservice!r} for a URL "
            "without a host, and this guard cannot check a service file; name the host in the URL, or pass "
            "--allow-remote or set PROVISION_ALLOW_REMOTE=1 if this really is a database for load tests.",
            host=f"service {target.pgservice}",
        )
    for host, _port in target.hosts:
        if not is_loopback_host(host):
            raise RemoteTargetRefused(
                f"Refusing to touch {target.masked}: host {host!r} is not a loopback address or Unix socket, "
                "and this toolkit writes and deletes test data; pass --allow-remote or set PROVISION_ALLOW_REMOTE=1 "
                "if this really is a database for load tests.",
                host=host,
            )
