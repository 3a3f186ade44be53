"""The toolkit's exceptions: one root, a few subclasses that carry data and an exit code.

Library code raises these; only the CLI turns them into one line on stderr and an
exit code (see ``cli.py``).  Messages are single sentences meant for a platform
engineer, and must never contain a password (pass URLs through ``dburl.mask_url``).
"""

from __future__ import annotations

__all__ = [
    "ConcurrentOperation",
    "CredentialsError",
    "DatabaseRefused",
    "DatabaseUnreachable",
    "InputError",
    "Interrupted",
    "LoadTestFailed",
    "PlatformStartFailed",
    "PlatformUnresponsive",
    "ProvisionError",
    "ProvisioningFailed",
    "RemoteTargetRefused",
    "RunNotFound",
    "SchemaMismatch",
    "StateDirUnsafe",
    "TeardownIncomplete",
]


class ProvisionError(Exception):
    """Root of every error the toolkit reports; ``exit_code`` is what the CLI exits with."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(ProvisionError):
    """Bad user input: unknown scale, bad count, malformed TOML or URL, bad option value."""

    exit_code = 2


class RemoteTargetRefused(ProvisionError):
    """The database target is not on a loopback address and remote targets were not allowed."""

    exit_code = 4

    def __init__(self, message: str, *, host: str) -> None:
        super().__init__(message)
        self.host = host


class DatabaseUnreachable(ProvisionError):
    """The database could not be reached or refused the login."""

    exit_code = 5

    def __init__(self, message: str, *, host: str = "", port: int | None = None, database: str = "") -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.database = database


class SchemaMismatch(ProvisionError):
    """The live schema does not have what the toolkit needs (a table or a column)."""

    exit_code = 6

    def __init__(self, message: str, *, table: str | None = None, column: str | None = None) -> None:
        super().__init__(message)
        self.table = table
        self.column = column


class RunNotFound(ProvisionError):
    """The ledger does not know the run asked for (or knows no run at all)."""

    exit_code = 7

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class ProvisioningFailed(ProvisionError):
    """``up`` failed after the run was recorded; the run is marked ``failed`` and nothing is left behind."""

    exit_code = 8

    def __init__(self, message: str, *, run_id: str | None = None, table: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.table = table


class TeardownIncomplete(ProvisionError):
    """``down`` verified and found rows left in a table that references the run's tenants."""

    exit_code = 9

    def __init__(self, message: str, *, run_id: str | None = None, table: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.table = table


class ConcurrentOperation(ProvisionError):
    """Another process holds the lock for this run (or the ledger) and we will not wait."""

    exit_code = 10

    def __init__(self, message: str, *, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class StateDirUnsafe(ProvisionError):
    """The state directory is a symlink, world-writable, or otherwise unsafe for credentials."""

    exit_code = 11


class CredentialsError(ProvisionError):
    """A credentials pool is missing, empty, malformed, has duplicates or is too small."""

    exit_code = 12


class PlatformStartFailed(ProvisionError):
    """The reference platform (fixtures/platform) could not be started or did not become ready."""

    exit_code = 13


class LoadTestFailed(ProvisionError):
    """A load test (``provision demo``'s Locust run) could not run or was not judged: Locust ended
    with a code other than the gate's 0 (pass) or 3 (breach), or did not end in time."""

    exit_code = 14

    def __init__(self, message: str, *, locust_exit_code: int | None = None) -> None:
        super().__init__(message)
        self.locust_exit_code = locust_exit_code


class DatabaseRefused(ProvisionError):
    """PostgreSQL refused what the toolkit needs before anything was written: a privilege (a
    read-only user cannot create the ledger), or a lock it could not get within the role's
    ``lock_timeout``."""

    exit_code = 15


class Interrupted(ProvisionError):
    """The operation was interrupted (Ctrl-C); whatever was started has been undone."""

    exit_code = 130


class PlatformUnresponsive(ProvisionError):
    """The platform under test gave no HTTP answer to the scenarios' warm-up in time."""

    exit_code = 16


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers put their detail below it), or the
    exception's type when it has no message; callers that show it mask secrets first."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
