"""How a failed ``up`` names its cause: a terminated backend is a lost connection, not a refused row."""

from __future__ import annotations

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.session import connection_lost


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (asyncpg.exceptions.AdminShutdownError, True),  # 57P01: pg_terminate_backend, a fast shutdown
        (asyncpg.exceptions.CrashShutdownError, True),  # 57P02
        (asyncpg.exceptions.CannotConnectNowError, True),  # 57P03
        (asyncpg.exceptions.ConnectionFailureError, True),  # 08006
        (asyncpg.exceptions.CheckViolationError, False),  # a row the table refuses
        (asyncpg.exceptions.ForeignKeyViolationError, False),
        (asyncpg.exceptions.QueryCanceledError, False),  # 57014: a statement timeout is not a lost connection
    ],
)
def test_terminated_backends_are_lost_connections(error: type[asyncpg.PostgresError], lost: bool) -> None:
    assert connection_lost(error("x")) is lost
