"""The one COPY loop: batches of rows into a table with asyncpg's binary COPY.

Why binary COPY: in a bulk load the PostgreSQL backend is the bottleneck, and binary
COPY is the input format that costs it least (no text parsing); asyncpg encodes the
Python values with the column types it reads from the server.  Every loader in the
toolkit goes through ``copy_rows`` so that there is one place that knows how rows reach
the server, how progress is reported, and how a failure is named.

Three encoders write the same bytes.  ``asyncpg`` (the default; ``copy_records_to_table``):
tuples encoded value by value.  ``preencoded``: a source of batches
that can give them already encoded (``EncodedBatches``: the generated tables, whose pool
values are encoded once) is asked for them, for the live column kinds, and its bytes go
to ``copy_to_table`` as they are; any other source, a row transform, or a source that
declines is copied by asyncpg's encoder; it spends less client CPU on the rows but is
not measurably faster end to end on two cores, where the server's backends set the pace,
and it holds more memory, so it is a choice, not the default.  ``python``:
``copyencode``'s Python encoder of tuples.  The environment variable ``PROVISION_COPY_ENCODER`` picks one
(``bench/preencoded_bench.py`` compares the client CPU of the first two); a table with a
column type the Python encoders do not know is copied by asyncpg's encoder whatever the
choice.

A stream of batches is one ``copy_records_to_table`` call fed lazily, batch by batch
(an async iterable of batches: one call per batch).  Batches bound memory (one batch of
Python tuples per stream at a time); small ones (4,000 rows by default in ``up``) keep
the generation of one stream from starving the other streams' backends.  The caller
owns the transaction.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import asyncpg

from ..errors import InputError
from ..progress import ProgressCallback, ProgressEvent, null_progress
from .copyencode import COPY_HEADER, COPY_TRAILER, RowEncoder, column_kinds, column_types, row_encoder

__all__ = [
    "COPY_ENCODERS",
    "ENCODER_ENV",
    "CopyTarget",
    "EncodedBatches",
    "Encoder",
    "Row",
    "RowTransform",
    "copy_rows",
    "default_encoder",
]

Row = tuple[Any, ...]
RowTransform = Callable[[Row], Row]
Encoder = Literal["asyncpg", "python", "preencoded"]
COPY_ENCODERS: tuple[Encoder, ...] = ("asyncpg", "python", "preencoded")
ENCODER_ENV = "PROVISION_COPY_ENCODER"
ENCODED_CHUNK_BYTES = 1 << 18  # bytes per CopyData message of already encoded batches
CHUNK_ROWS = 1_000  # rows per CopyData chunk of the Python stream (the event loop may switch streams between)


def default_encoder() -> Encoder:
    """The encoder ``copy_rows`` uses when not told: ``PROVISION_COPY_ENCODER``, else ``asyncpg``."""
    choice = os.environ.get(ENCODER_ENV, "").strip().lower() or "asyncpg"
    if choice not in COPY_ENCODERS:
        raise InputError(f"{ENCODER_ENV} must be one of {', '.join(COPY_ENCODERS)}, not {choice!r}.")
    return choice  # type: ignore[return-value]


@runtime_checkable
class EncodedBatches(Protocol):
    """Batches that can also be had as binary COPY tuples (no header), each with its row count."""

    def encoded(self, kinds: Sequence[str]) -> Iterator[tuple[bytes, int]] | None:
        """The batches for columns of these kinds (``copyfields.SCALAR_KINDS``), or None to be iterated."""
        ...


@dataclass(frozen=True)
class CopyTarget:
    """Where a stream of rows goes: ``label`` names it in progress events (the contract
    table name), ``schema``/``name``/``columns`` are the live identifiers (asyncpg
    quotes them), and ``transform`` (if any) reshapes each row to ``columns``."""

    label: str
    schema: str
    name: str
    columns: tuple[str, ...]
    transform: RowTransform | None = None


def _stream_rows(
    batches: Iterable[Sequence[Row]],
    transform: RowTransform | None,
    label: str,
    progress: ProgressCallback,
    sent: list[int],
) -> Iterator[Row]:
    """Every row of every batch, for one COPY; a ``rows`` event after each batch is encoded.

    One COPY per stream of batches, fed lazily: the rows of the next batch are generated
    only when asyncpg has encoded the previous ones, and asyncpg gives the event loop
    away whenever the socket is full, so with several streams one stream's generation
    overlaps the other streams' server work (measured: 25,000-row batches, each its own
    COPY, left the other stream's backend idle while a batch was generated).
    """
    for batch in batches:
        if not batch:
            continue
        yield from (map(transform, batch) if transform is not None else batch)
        sent[0] += len(batch)
        progress(ProgressEvent("rows", table=label, count=len(batch)))


async def _stream_bytes(
    batches: Iterable[Sequence[Row]],
    transform: RowTransform | None,
    encoder: RowEncoder,
    label: str,
    progress: ProgressCallback,
    sent: list[int],
) -> AsyncIterator[bytes]:
    """The binary COPY stream of every row of every batch (header, tuples, trailer), for one
    ``copy_to_table``; a ``rows`` event after each batch is encoded, as ``_stream_rows`` does."""
    head = COPY_HEADER
    for batch in batches:
        if not batch:
            continue
        rows = list(map(transform, batch)) if transform is not None else batch
        for k in range(0, len(rows), CHUNK_ROWS):
            yield head + encoder.encode(rows[k : k + CHUNK_ROWS])
            head = b""
        sent[0] += len(batch)
        progress(ProgressEvent("rows", table=label, count=len(batch)))
    yield head + COPY_TRAILER


async def _stream_encoded(
    batches: Iterator[tuple[bytes, int]], label: str, progress: ProgressCallback, sent: list[int]
) -> AsyncIterator[bytes]:
    """The binary COPY stream of already encoded batches; a ``rows`` event after each one is sent.

    A batch goes in pieces of ``ENCODED_CHUNK_BYTES``: a CopyData message of a whole batch
    (megabytes) sits in the transport's buffer while the socket drains it, and every partial
    send moves the rest of that buffer (measured: about as much client CPU as the encoding).
    """
    yield COPY_HEADER
    for data, count in batches:
        if not count:
            continue
        for k in range(0, len(data), ENCODED_CHUNK_BYTES):
            yield data[k : k + ENCODED_CHUNK_BYTES]
        sent[0] += count
        progress(ProgressEvent("rows", table=label, count=count))
    yield COPY_TRAILER


async def _copy_batch(conn: asyncpg.Connection, target: CopyTarget, start: Callable[[], Awaitable[Any]]) -> None:
    """One COPY call (``start()``) that cannot hang on a lost connection.

    asyncpg (0.32) waits forever when the connection is lost while a COPY is paused by flow
    control (its ``writing_allowed`` event is never set again): a backend terminated in the
    middle of a big COPY left ``provision up`` hanging.  A termination listener cancels the
    call instead, and the loss is reported as the ``ConnectionDoesNotExistError`` it is.
    """
    call = asyncio.ensure_future(start())

    def lost(_conn: object) -> None:
        call.cancel()

    conn.add_termination_listener(lost)
    try:
        await call
    except BaseException:
        task = asyncio.current_task()
        if conn.is_closed() and not (task is not None and task.cancelling()):
            raise asyncpg.ConnectionDoesNotExistError(
                f"the connection was lost during the COPY into {target.schema}.{target.name}"
            ) from None
        raise
    finally:
        conn.remove_termination_listener(lost)


async def _python_encoding(
    conn: asyncpg.Connection, target: CopyTarget, batches: object, choice: Encoder
) -> tuple[RowEncoder | None, Iterator[tuple[bytes, int]] | None]:
    """The Python tuple encoder, or the already encoded batches, that ``choice`` gets for this COPY;
    (None, None): asyncpg's encoder (its choice, or a type, transform or source the others do not take)."""
    if choice == "python":
        return row_encoder(await column_types(conn, target.schema, target.name, list(target.columns))), None
    if choice == "preencoded" and target.transform is None and isinstance(batches, EncodedBatches):
        kinds = column_kinds(await column_types(conn, target.schema, target.name, list(target.columns)))
        return None, batches.encoded(kinds) if kinds is not None else None
    return None, None


async def copy_rows(
    conn: asyncpg.Connection,
    target: CopyTarget,
    batches: Iterable[Sequence[Row]] | AsyncIterable[Sequence[Row]],
    *,
    total: int | None = None,
    progress: ProgressCallback = null_progress,
    announce: bool = True,
    encoder: Encoder | None = None,
) -> int:
    """COPY every batch into ``target`` on ``conn``; return the number of rows written.

    Emits ``table_start`` (with ``total``), one ``rows`` event per batch, and
    ``table_done`` (``data``: rows, seconds); with ``announce=False`` only the ``rows``
    events (for a caller that loads one table in several parallel pieces and announces
    the table itself).  ``encoder`` picks who writes the binary stream (default
    ``default_encoder()``).  Errors propagate unchanged: the caller decides what a failure
    means for its transaction.
    """
    if announce:
        progress(ProgressEvent("table_start", table=target.label, total=total))
    started = time.perf_counter()
    transform = target.transform
    columns = list(target.columns)
    sent = [0]
    python, encoded = await _python_encoding(conn, target, batches, encoder or default_encoder())

    def start(batches: Iterable[Sequence[Row]]) -> Callable[[], Awaitable[Any]]:
        if encoded is not None:
            source = _stream_encoded(encoded, target.label, progress, sent)
            return lambda: conn.copy_to_table(
                target.name, schema_name=target.schema, columns=columns, source=source, format="binary"
            )
        if python is not None:
            stream = _stream_bytes(batches, transform, python, target.label, progress, sent)
            return lambda: conn.copy_to_table(
                target.name, schema_name=target.schema, columns=columns, source=stream, format="binary"
            )
        records = _stream_rows(batches, transform, target.label, progress, sent)
        return lambda: conn.copy_records_to_table(
            target.name, schema_name=target.schema, columns=columns, records=records
        )

    if isinstance(batches, AsyncIterable):  # one COPY per batch
        async for batch in batches:
            if batch:
                await _copy_batch(conn, target, start([batch]))
    else:
        await _copy_batch(conn, target, start(batches))
    written = sent[0]
    seconds = time.perf_counter() - started
    if announce:
        progress(
            ProgressEvent(
                "table_done", table=target.label, count=written, data={"rows": written, "seconds": seconds}
            )
        )
    return written
