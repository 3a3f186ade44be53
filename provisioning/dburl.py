"""Database URLs: parsing (libpq-style, several hosts, Unix sockets), masking and the remote guard.

The guard decides *before any connection is attempted* whether a target is on this
machine.  ``is_loopback_host`` is the decision function for one host; it never opens
a socket (names are resolved with ``getaddrinfo``, which for names under the
reserved ``.invalid`` domain fails locally).
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .errors import InputError, RemoteTargetRefused

__all__ = [
    "DatabaseTarget",
    "check_remote_allowed",
    "is_loopback_host",
    "mask_url",
    "parse_database_url",
    "remote_allowed_by_env",
]

_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2")
MASK = "***"


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed PostgreSQL URL. ``hosts`` holds (host, port) pairs; a host starting with '/' is a socket dir."""

    url: str
    user: str | None
    password: str | None
    database: str
    hosts: tuple[tuple[str, int], ...]
    query: dict[str, str] = field(default_factory=dict)
    # True when the URL names no host: the driver then takes PGHOST (or a PGSERVICE entry)
    implicit_host: bool = False

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def host_label(self) -> str:
        """Hosts for messages: 'host:port' joined by commas, sockets shown as their directory."""
        return ",".join(h if h.startswith("/") else f"{h}:{p}" for h, p in self.hosts)

    @property
    def asyncpg_url(self) -> str:
        """The URL as asyncpg wants it (plain ``postgresql://`` scheme)."""
        return "postgresql://" + self.url.split("://", 1)[1]

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+asyncpg://" + self.url.split("://", 1)[1]

    def with_database(self, database: str) -> DatabaseTarget:
        """The same server, another database (used by tests and the embedded default)."""
        parts = urlsplit(self.url)
        new = parts._replace(path="/" + quote(database)).geturl()
        return parse_database_url(new)


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse a libpq-style URL; raise ``InputError`` (with the password masked) when malformed."""
    if not isinstance(url, str) or "://" not in url:
        raise InputError(
            f"The database URL {mask_url(str(url))!r} is malformed: expected postgresql://user@host:port/database."
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in _SCHEMES:
        raise InputError(
            f"The database URL {mask_url(url)!r} has scheme {scheme!r}; "
            "only PostgreSQL URLs (postgresql://) are supported."
        )
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError as exc:
        raise InputError(f"The database URL {mask_url(url)!r} is malformed ({exc}).") from None
    user: str | None = None
    password: str | None = None
    hostpart = netloc
    if "@" in netloc:
        userinfo, hostpart = netloc.rsplit("@", 1)
        if ":" in userinfo:
            u, p = userinfo.split(":", 1)
            user, password = unquote(u) or None, unquote(p)
        else:
            user = unquote(userinfo) or None
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    hosts: list[tuple[str, int]] = []
    default_port = 5432
    if "port" in query:
        try:
            default_port = int(query["port"].split(",")[0])
        except ValueError:
            raise InputError(f"The database URL {mask_url(url)!r} has a non-numeric port.") from None
    for item in filter(None, hostpart.split(",")):
        host, port = _split_host_port(item, url, default_port)
        hosts.append((host, port))
    for key in ("host", "hostaddr"):  # libpq connects to hostaddr when given: the guard checks it too
        for h in filter(None, query.get(key, "").split(",")):
            hosts.append((h, default_port))
    implicit = not hosts
    if implicit:
        hosts.append(("localhost", default_port))
    database = unquote(parts.path.lstrip("/")) or (user or "postgres")
    if "/" in database:
        raise InputError(f"The database URL {mask_url(url)!r} has an invalid database name {database!r}.")
    return DatabaseTarget(
        url=url, user=user, password=password, database=database, hosts=tuple(hosts), query=query,
        implicit_host=implicit,
    )


def _split_host_port(item: str, url: str, default_port: int) -> tuple[str, int]:
    if item.startswith("["):
        end = item.find("]")
        if end < 0:
            raise InputError(f"The database URL {mask_url(url)!r} has an unclosed IPv6 bracket.")
        host = item[1:end]
        rest = item[end + 1 :]
        port_s = rest[1:] if rest.startswith(":") else ""
    elif item.count(":") == 1:
        host, port_s = item.split(":")
    else:
        host, port_s = item, ""
    host = unquote(host)
    if not port_s:
        return host, default_port
    try:
        port = int(port_s)
    except ValueError:
        raise InputError(f"The database URL {mask_url(url)!r} has a non-numeric port {port_s!r}.") from None
    if not 0 < port < 65536:
        raise InputError(f"The database URL {mask_url(url)!r} has port {port}, outside 1-65535.")
    return host, port


def mask_url(url: str) -> str:
    """Replace the password of a URL (and any ``password=`` query value) with ``***``."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    netloc_end = len(rest)
    for sep in "/?#":
        idx = rest.find(sep)
        if idx >= 0:
            netloc_end = min(netloc_end, idx)
    netloc, tail = rest[:netloc_end], rest[netloc_end:]
    if "@" in netloc:
        userinfo, hostpart = netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = userinfo + "@" + hostpart
    if "password=" in tail:
        head, _, q = tail.partition("?")
        pairs = []
        for kv in q.split("&"):
            k, eq, _v = kv.partition("=")
            pairs.append(f"{k}={MASK}" if k == "password" and eq else kv)
        tail = head + "?" + "&".join(pairs)
    return f"{scheme}://{netloc}{tail}"


def _ip_is_loopback(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def is_loopback_host(host: str, *, resolve: bool = True) -> bool:
    """True when ``host`` is certainly this machine: a Unix socket directory, a loopback IP
    literal, ``localhost``, or a name whose every resolved address is loopback.

    Anything else (a name that does not resolve, a private or public address, the
    unspecified address ``0.0.0.0``/``::``) is remote.  With ``resolve=False`` names other
    than ``localhost`` are treated as remote without a lookup.
    """
    if not host:
        return False
    if host.startswith("/") or host.startswith("@"):
        return True  # a Unix socket directory (or abstract socket): local by construction
    bare = host.strip("[]")
    if "%" in bare:  # IPv6 zone id: never loopback-only
        bare = bare.split("%", 1)[0]
    try:
        return _ip_is_loopback(ipaddress.ip_address(bare))
    except ValueError:
        pass
    name = bare.rstrip(".").lower()
    if name == "localhost":
        return True
    if not resolve:
        return False
    if name.endswith(".invalid") or name == "invalid":
        return False  # RFC 2606: never resolves; decided without a lookup
    try:
        infos = socket.getaddrinfo(name, None)
    except (OSError, UnicodeError):
        return False
    if not infos:
        return False
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        try:
            if not _ip_is_loopback(ipaddress.ip_address(addr)):
                return False
        except ValueError:
            return False
    return True


def remote_allowed_by_env(env: dict[str, str] | None = None) -> bool:
    value = (env if env is not None else os.environ).get("PROVISION_ALLOW_REMOTE", "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def check_remote_allowed(target: DatabaseTarget, *, allow_remote: bool = False) -> None:
    """Refuse a target any of whose hosts is not loopback, unless remote targets are allowed."""
    if allow_remote or remote_allowed_by_env():
        return
    hosts = [h for h, _port in target.hosts]
    if target.implicit_host:
        # the URL names no host: asyncpg connects where PGHOST (or a service entry) says
        service = target.query.get("service") or os.environ.get("PGSERVICE")
        if service:
            raise RemoteTargetRefused(
                f"Refusing to touch {target.masked}: its host would come from the PostgreSQL service {service!r}, "
                "which this guard cannot check; name the host in the URL, or pass --allow-remote or set "
                "PROVISION_ALLOW_REMOTE=1 if this really is a database for load tests.",
                host=f"service {service}",
            )
        hosts = [h for h in os.environ.get("PGHOST", "").split(",") if h] or hosts
    for host in hosts:
        if not is_loopback_host(host):
            raise RemoteTargetRefused(
                f"Refusing to touch {target.masked}: host {host!r} is not a loopback address or Unix socket, "
                "and this toolkit writes and deletes test data; pass --allow-remote or set PROVISION_ALLOW_REMOTE=1 "
                "if this really is a database for load tests.",
                host=host,
            )
