"""Database URLs: one strict parse into checked parameters, and masking of their secrets.

Why strict: the guard must decide on exactly the hosts the driver will use.  Two URL
parsers that read one string differently (the last '@' or the first, a trailing dot
stripped or kept, an empty entry in a host list dropped or kept) let a URL pass the guard
as one host and connect to another.  So the URL is parsed once, here; forms on which
libpq, asyncpg and this parser could disagree are refused (more than one '@', a '#',
whitespace, trailing dots, empty host entries, unbracketed IPv6, hosts given twice,
percent-encoded host names, repeated query keys); and the driver gets the parsed
parameters (``DatabaseTarget.connect_kwargs``), never the string.  Where a string is
needed (a child process, SQLAlchemy), ``asyncpg_url`` is rebuilt from those parameters, so
that parsing it again gives the same target.

The remote guard that judges the parsed hosts is ``guard``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from ..errors import InputError

__all__ = [
    "DEFAULT_SOCKET_HOSTS",
    "DatabaseTarget",
    "mask_text",
    "mask_url",
    "parse_database_url",
]

_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2")
MASK = "***"
# what asyncpg tries when nothing names a host (its own default list; all on this machine)
DEFAULT_SOCKET_HOSTS = ("/run/postgresql", "/var/run/postgresql", "/tmp", "/private/tmp", "localhost")
# query keys asyncpg understands as connection options (anything else becomes a server setting)
_DRIVER_OPTIONS = frozenset({
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs", "krbsrvname",
    "gsslib", "passfile",
})
_UNSUPPORTED = {
    "hostaddr": "the driver ignores it and would connect to a host nobody checked; give the address as the host",
    "service": "the host would come from a service file this toolkit does not read; name host, port and database",
    "servicefile": "the host would come from a service file this toolkit does not read; name host, port and database",
}
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_NUMERIC_V4 = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)(?:\.(?:0[xX][0-9A-Fa-f]*|[0-9]+)){0,3}")
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]+)\](?::(.*))?")
_PORT = re.compile(r"[0-9]{1,5}")
_QUERY_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_URL_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)([^\s'\"]*)@")
_SECRET_IN_TEXT = re.compile(r"((?:^|[?&;\s])(?:password|sslpassword)=)[^&\s'\"]*", re.IGNORECASE)


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed, checked PostgreSQL target.  ``hosts`` holds (host, port) pairs exactly as the
    driver gets them; a host starting with '/' is a Unix socket directory.  ``url`` is the
    string as given: never printed (``masked``) and never handed to a driver."""

    url: str
    user: str | None
    password: str | None
    database: str
    hosts: tuple[tuple[str, int], ...]
    options: dict[str, str] = field(default_factory=dict)  # driver options (sslmode, ...)
    settings: dict[str, str] = field(default_factory=dict)  # server settings (application_name, ...)
    # True when the URL names no host: the hosts then came from PGHOST or asyncpg's default list
    implicit_host: bool = False
    pgservice: str | None = None  # PGSERVICE at parse time (with an implicit host: refused by the guard)

    @property
    def query(self) -> dict[str, str]:
        return {**self.options, **self.settings}

    @property
    def masked(self) -> str:
        """The URL as given, with the password and every secret option replaced by ``***``."""
        return mask_url(self.url)

    @property
    def host_label(self) -> str:
        """Hosts for messages: 'host:port' joined by commas, sockets shown as their directory."""
        return ",".join(h if h.startswith("/") else f"{_bracket(h)}:{p}" for h, p in self.hosts)

    @property
    def asyncpg_url(self) -> str:
        """The URL rebuilt from the checked parameters (plain ``postgresql://``): parsing it again
        gives this target; asyncpg's own parser reads the same hosts from it."""
        return self._build()

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+asyncpg://" + self.asyncpg_url.split("://", 1)[1]

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``asyncpg.connect``/``create_pool``: the checked hosts and ports as
        lists (so neither PGHOST nor a service file can add one), and no URL to parse again."""
        kwargs: dict[str, Any] = {
            "host": [h for h, _ in self.hosts],
            "port": [p for _, p in self.hosts],
            "database": self.database,
        }
        if self.user:
            kwargs["user"] = self.user
        if self.password is not None:
            kwargs["password"] = self.password
        if self.options:  # only as a URL do these reach asyncpg; it holds no host, user or database
            kwargs["dsn"] = "postgresql://?" + urlencode(sorted(self.options.items()), quote_via=quote)
        if self.settings:
            kwargs["server_settings"] = dict(self.settings)
        return kwargs

    def with_database(self, database: str) -> DatabaseTarget:
        """The same server, another database (used by tests and the embedded default)."""
        return parse_database_url(DatabaseTarget(
            self.url, self.user, self.password, database, self.hosts, self.options, self.settings
        ).asyncpg_url)

    def _build(self) -> str:
        userinfo = quote(self.user, safe="") if self.user else ""
        if self.password is not None:
            userinfo += ":" + quote(self.password, safe="")
        query = sorted(self.query.items())
        if any(h.startswith("/") for h, _ in self.hosts):
            hostspec = ""
            query = [("host", ",".join(h for h, _ in self.hosts)), ("port", ",".join(str(p) for _, p in self.hosts)),
                     *query]
        else:
            hostspec = self.host_label
        at = "@" if userinfo else ""
        tail = "?" + urlencode(query, quote_via=quote, safe="/,:[]") if query else ""
        return f"postgresql://{userinfo}{at}{hostspec}/{quote(self.database, safe='')}{tail}"


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _bad(what: str) -> InputError:
    """A URL error that never echoes the URL: its user info may hold a password with an unencoded
    '@' or ':', and a string missing '://' may be nothing but a secret."""
    return InputError(f"The database URL {what}.")


def parse_database_url(url: str, *, env: Mapping[str, str] | None = None) -> DatabaseTarget:
    """Parse and check a libpq-style URL; raise one ``InputError`` sentence (echoing nothing secret).

    ``env`` (default: the process environment) supplies PGHOST and PGPORT when the URL names no
    host or port, as asyncpg would have.
    """
    environ = env if env is not None else os.environ
    userinfo, hostspec, path, query = _split_url(url)
    raw_user, colon, raw_password = userinfo.partition(":")
    user = unquote(raw_user) or None
    password = unquote(raw_password) if colon and raw_password else None
    for key, why in _UNSUPPORTED.items():
        if key in query:
            raise _bad(f"has '{key}=': {why}")
    entries, implicit = _host_entries(hostspec, query, environ)
    hosts = _assign_ports(entries, query.pop("port", None), environ.get("PGPORT", ""))
    user = _one_of(user, query.pop("user", None), "user") or None
    password = _one_of(password, query.pop("password", None), "password")
    database = _database_name(path, query) or user or "postgres"
    if "/" in database or "\x00" in database:
        raise _bad("has an invalid database name (it contains '/' or NUL)")
    options = {k: v for k, v in query.items() if k in _DRIVER_OPTIONS}
    settings = {k: v for k, v in query.items() if k not in _DRIVER_OPTIONS}
    return DatabaseTarget(
        url=url, user=user, password=password, database=database, hosts=tuple(hosts), options=options,
        settings=settings, implicit_host=implicit, pgservice=environ.get("PGSERVICE") or None,
    )


def _split_url(url: str) -> tuple[str, str, str, dict[str, str]]:
    """(user info, host spec, path, query) of a URL whose form is unambiguous, or one sentence why not."""
    if not isinstance(url, str) or not url.strip():
        raise _bad("is empty")
    if "://" not in url:
        raise _bad("is malformed: it has no '://' (expected postgresql://user@host:port/database)")
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in _SCHEMES:
        shown = f"scheme {scheme!r}" if re.fullmatch(r"[a-z][a-z0-9+.]{0,15}", scheme) else "an unknown scheme"
        raise _bad(f"has {shown}; only PostgreSQL URLs (postgresql://) are supported")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise _bad("contains whitespace or control characters; percent-encode them")
    if "#" in rest:
        raise _bad("contains '#'; percent-encode it as %23 (a '#' ends a URL for some parsers)")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    path, _, raw_query = tail.partition("?")
    if netloc.count("@") > 1:
        raise _bad("has more than one '@' before its host; percent-encode '@' in the user name or password as %40")
    userinfo, at, hostspec = netloc.rpartition("@")
    if not at:
        userinfo, hostspec = "", netloc
    if "[" in userinfo or "]" in userinfo:  # urllib refuses these outside an IPv6 host; libpq does not
        raise _bad("has '[' or ']' in its user info; percent-encode them (%5B, %5D)")
    return userinfo, hostspec, path, _parse_query(raw_query)


def _host_entries(
    hostspec: str, query: dict[str, str], environ: Mapping[str, str]
) -> tuple[list[tuple[str, int | None]], bool]:
    """The hosts named before the path or in ``host=`` (never both), else PGHOST or the socket
    defaults; and whether they were implicit."""
    netloc_hosts = _parse_hostlist(hostspec, "host list", encoded=True) if hostspec else []
    query_hosts = _parse_hostlist(query.pop("host"), "'host=' list", encoded=False) if "host" in query else []
    if netloc_hosts and query_hosts:
        raise _bad("names hosts both before the path and in 'host='; libpq and asyncpg would pick different ones")
    if netloc_hosts or query_hosts:
        return netloc_hosts or query_hosts, False
    pghost = environ.get("PGHOST", "")
    if pghost:
        return _parse_hostlist(pghost, "PGHOST list", encoded=False), True
    return [(h, None) for h in DEFAULT_SOCKET_HOSTS], True


def _database_name(path: str, query: dict[str, str]) -> str | None:
    path_db = unquote(path[1:]) if path.startswith("/") else ""
    if "dbname" in query and "database" in query:
        raise _bad("has both 'dbname=' and 'database='")
    return _one_of(path_db or None, query.pop("dbname", None) or query.pop("database", None), "database name")


def _parse_query(raw: str) -> dict[str, str]:
    if not raw:
        return {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _bad("has a malformed query string (every option must look like key=value)") from None
    query: dict[str, str] = {}
    for key, value in pairs:
        if not _QUERY_KEY.fullmatch(key):
            raise _bad("has a query option whose name is not a plain word")
        if key in query:
            raise _bad(f"gives the option {key!r} twice; parsers disagree on which one counts")
        query[key] = value
    return query


def _one_of(first: str | None, second: str | None, what: str) -> str | None:
    if first and second is not None:
        raise _bad(f"gives the {what} twice (before the host and as a query option)")
    return first if first else second


def _parse_hostlist(spec: str, where: str, *, encoded: bool) -> list[tuple[str, int | None]]:
    """Host entries (host, explicit port or None); ``encoded``: the netloc form (percent-encoding)."""
    out = []
    for entry in spec.split(","):
        if not entry:
            raise _bad(f"has an empty entry in its {where}")
        out.append(_parse_host(entry, where, encoded=encoded))
    return out


def _parse_host(entry: str, where: str, *, encoded: bool) -> tuple[str, int | None]:
    if entry.startswith("["):
        m = _BRACKETED.fullmatch(entry)
        if m is None:
            raise _bad(f"has a malformed bracketed IPv6 address in its {where} (unclosed bracket or a zone id)")
        try:
            host = str(ipaddress.IPv6Address(m.group(1)))
        except ValueError:
            raise _bad(f"has a bracketed host in its {where} that is not an IPv6 address") from None
        return host, _port(m.group(2), where)
    if encoded and ("[" in entry or "]" in entry):  # urllib refuses these outside an IPv6 host; libpq does not
        raise _bad(f"has '[' or ']' outside a bracketed IPv6 address in its {where}")
    socket_dir = entry.startswith("/") or (encoded and entry[:3].lower() == "%2f")
    if socket_dir:
        host_s, port_s = (entry.partition(":")[0], entry.partition(":")[2] or None) if encoded else (entry, None)
        host = unquote(host_s) if encoded else host_s
        if "\x00" in host or "," in host or not host.startswith("/"):  # a ',' would split a host list
            raise _bad(f"has a malformed Unix socket directory in its {where}")
        return host, _port(port_s, where)
    if entry.count(":") > 1:
        raise _bad(f"has an IPv6 address without brackets in its {where}; write it as [address]:port")
    host_s, colon, port_s = entry.partition(":")
    if "%" in host_s:
        raise _bad(f"has a percent-encoded host name in its {where}; write the host plainly")
    if host_s.endswith(".") and _HOSTNAME.fullmatch(host_s[:-1]):
        raise _bad(
            f"has the host {host_s!r} ending with a dot (a name resolved by DNS, not the one without the dot); "
            "write it without the dot"
        )
    if not host_s.isascii() or not _HOSTNAME.fullmatch(host_s) or len(host_s) > 253:
        raise _bad(f"has an entry in its {where} that is not a host name, an IP address or a socket directory")
    return _canonical_host(host_s), _port(port_s if colon else None, where)


def _canonical_host(host: str) -> str:
    """Numeric IPv4 spellings (``127.1``, ``2130706433``, ``0x7f.1``) as the dotted quad the
    resolver reads them as, so that the driver is handed the address that was checked."""
    if _NUMERIC_V4.fullmatch(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return host  # not an address for the resolver either: a name (resolved, and so checked)
    return host.lower() if host.lower() == "localhost" else host


def _port(text: str | None, where: str) -> int | None:
    if text is None:
        return None
    if not _PORT.fullmatch(text):
        raise _bad(f"has a non-numeric port in its {where} (ports are ASCII digits)")
    if not 0 < int(text) < 65536:
        raise _bad(f"has a port in its {where} outside 1-65535")
    return int(text)


def _port_list(text: str, where: str) -> list[int]:
    ports = [_port(p, where) for p in text.split(",")]
    return [p for p in ports if p is not None]


def _assign_ports(
    entries: list[tuple[str, int | None]], query_port: str | None, pgport: str
) -> list[tuple[str, int]]:
    explicit = [p for _, p in entries if p is not None]
    if query_port is not None and explicit:
        raise _bad("gives ports both after the hosts and as 'port='")
    spec, where = (query_port, "'port=' option") if query_port is not None else (pgport, "PGPORT")
    defaults = _port_list(spec, where) if spec else [5432]
    if len(defaults) == 1:
        defaults = defaults * len(entries)
    elif len(defaults) != len(entries):
        raise _bad(f"has {len(entries)} hosts but {len(defaults)} ports in its {where}")
    return [(h, p if p is not None else d) for (h, p), d in zip(entries, defaults, strict=True)]


def mask_url(url: str) -> str:
    """A URL for messages, shaped as given, with the user info's password (all of the user info when
    it holds an '@') and every secret option replaced with ``***``; a string without '://' is not
    echoed at all."""
    if "://" not in url:
        return "<not a URL>"
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    if "@" in tail.partition("?")[0]:  # a password with an unencoded '/' moved an '@' into the path
        netloc, tail = MASK, "@" + tail.rpartition("@")[2]
    if "@" in netloc:
        userinfo, _, hostpart = netloc.rpartition("@")
        if "@" in userinfo:
            userinfo = MASK
        elif ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":" + MASK
        netloc = f"{userinfo}@{hostpart}"
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, f"{scheme}://{netloc}{tail}")


def mask_text(text: str) -> str:
    """Any text (an exception's message) with every URL's user info and every secret option masked."""
    text = _URL_IN_TEXT.sub(lambda m: m.group(1) + MASK + "@", text)
    return _SECRET_IN_TEXT.sub(lambda m: m.group(1) + MASK, text)
