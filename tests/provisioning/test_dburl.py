"""URL parsing, masking and the remote guard's decision function (no packets sent)."""

from __future__ import annotations

import pytest
from agentic_loadkit.provisioning.errors import InputError, RemoteTargetRefused
from agentic_loadkit.provisioning.target.guard import check_remote_allowed, is_loopback_host
from agentic_loadkit.provisioning.target.url import mask_url, parse_database_url


@pytest.mark.parametrize(
    ("url", "hosts", "database", "user"),
    [
        ("postgresql://postgres@127.0.0.1:5432/agentic_db", (("127.0.0.1", 5432),), "agentic_db", "postgres"),
        ("postgres://u:p@localhost/db", (("localhost", 5432),), "db", "u"),
        ("postgresql+asyncpg://u@[::1]:6000/x", (("::1", 6000),), "x", "u"),
        ("postgresql://postgres@/agentic_db?host=/tmp/sock", (("/tmp/sock", 5432),), "agentic_db", "postgres"),
        ("postgresql://a@h1:1,h2:2/db", (("h1", 1), ("h2", 2)), "db", "a"),
    ],
)
def test_parse(url: str, hosts: tuple[tuple[str, int], ...], database: str, user: str) -> None:
    target = parse_database_url(url)
    assert target.hosts == hosts
    assert target.database == database
    assert target.user == user


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://root@localhost/db", "postgresql://u@host:notaport/db", "postgresql://u@host:99999/db",
     "postgresql://u@[::1/db"],
)
def test_malformed_urls_raise_input_error_without_password(url: str) -> None:
    with pytest.raises(InputError) as info:
        parse_database_url(url.replace("u@", "u:hunter2@"))
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:hunter2@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:p%40ss@h:5/db?sslmode=require", "postgresql://u:***@h:5/db?sslmode=require"),
        ("postgresql://u@h/db?password=hunter2&x=1", "postgresql://u@h/db?password=***&x=1"),
        ("postgresql://u@h/db?sslmode=require&sslpassword=hunter2", "postgresql://u@h/db?sslmode=require&sslpassword=***"),
        ("postgresql://postgres:ab@cd:hunter2@127.0.0.1:5432/db", "postgresql://***@127.0.0.1:5432/db"),
        ("postgresql://postgres:ab/hunter2@127.0.0.1/db", "postgresql://***@127.0.0.1/db"),
        ("postgres:hunter2@127.0.0.1:5432/db", "<not a URL>"),
    ],
)
def test_mask(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("/var/run/postgresql", True),
        ("10.0.0.5", False),
        ("192.168.1.10", False),
        ("172.16.0.1", False),
        ("8.8.8.8", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("2001:db8::1", False),
        ("db.invalid", False),
        ("localhost.invalid", False),
        ("", False),
    ],
)
def test_loopback_decision(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


def test_guard_refuses_any_remote_host_among_several(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISION_ALLOW_REMOTE", raising=False)
    target = parse_database_url("postgresql://u:secret@127.0.0.1:5432,db.invalid:5432/x")
    with pytest.raises(RemoteTargetRefused) as info:
        check_remote_allowed(target)
    assert info.value.host == "db.invalid"
    assert "secret" not in str(info.value)
    check_remote_allowed(target, allow_remote=True)  # explicit permission passes
    monkeypatch.setenv("PROVISION_ALLOW_REMOTE", "1")
    check_remote_allowed(target)


def test_guard_checks_socket_and_query_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROVISION_ALLOW_REMOTE", raising=False)
    check_remote_allowed(parse_database_url("postgresql://u@/x?host=/tmp/pg"))
    with pytest.raises(RemoteTargetRefused):
        check_remote_allowed(parse_database_url("postgresql://u@/x?host=/tmp/pg,db.invalid"))


def test_the_driver_gets_the_checked_hosts_not_the_string() -> None:
    target = parse_database_url(
        "postgresql://u:p%40ss@127.1:6000,[::1]/db?sslmode=disable&application_name=x", env={"PGHOST": "10.0.0.1"}
    )
    kwargs = target.connect_kwargs()
    assert kwargs["host"] == ["127.0.0.1", "::1"] and kwargs["port"] == [6000, 5432]
    assert kwargs["user"] == "u" and kwargs["password"] == "p@ss" and kwargs["database"] == "db"
    assert kwargs["dsn"] == "postgresql://?sslmode=disable"  # options only: no host, user or database in it
    assert kwargs["server_settings"] == {"application_name": "x"}
    assert parse_database_url(target.asyncpg_url).connect_kwargs() == kwargs


def test_a_url_without_a_host_takes_pghost_checked_like_any_host() -> None:
    assert parse_database_url("postgresql://u@/db", env={"PGHOST": "/tmp,127.0.0.1", "PGPORT": "6000"}).hosts == (
        ("/tmp", 6000), ("127.0.0.1", 6000),
    )
    with pytest.raises(InputError, match="ending with a dot"):
        parse_database_url("postgresql://u@/db", env={"PGHOST": "localhost."})
