"""The hand-written binary COPY stream: the same bytes as asyncpg's encoder, type by type.

Reference bytes come from the server: rows copied in by asyncpg's own encoder
(``copy_records_to_table``) and exported with ``COPY ... TO STDOUT (FORMAT binary)``.
For every type here the server's binary output is its binary input (jsonb values are
given in the form jsonb prints), so the hand-written stream must equal that export
byte for byte; loading it must give back the same values.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.target.copyencode import COPY_HEADER, COPY_TRAILER, column_types, row_encoder
from agentic_loadkit.provisioning.target.copyload import CopyTarget, copy_rows
from agentic_loadkit.provisioning.target.url import DatabaseTarget
from up_helpers import up

COLUMNS = {
    "k": "int4",
    "t": "text",
    "vc": "varchar(64)",
    "s": "int2",
    "i": "int4",
    "b": "int8",
    "f4": "float4",
    "f8": "float8",
    "ok": "bool",
    "u": "uuid",
    "ts": "timestamptz",
    "tsn": "timestamp",
    "d": "date",
    "j": "json",
    "jb": "jsonb",
    "raw": "bytea",
    "ta": "text[]",
    "ia": "int4[]",
    "ra": "real[]",
    "ua": "uuid[]",
}
NAMES = tuple(COLUMNS)
IST = timezone(timedelta(hours=5, minutes=30))
PST = timezone(timedelta(hours=-8))


def _rows() -> list[tuple[Any, ...]]:
    u = uuid.UUID("3c7ccdb5-76bf-84a8-8000-00000000002a")
    return [
        (1, "plain", "active", 1, 1, 1, 0.5, 0.7, True, str(u),
         datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC), datetime(2024, 3, 1, 12, 30), date(2024, 3, 1),
         '{"a":1,  "b": [true, null]}', '{"a": 1, "bb": [1, 2.5, "x"]}', b"\x00\xffbytes",
         ["a", None, "Zoë"], [1, -2, None], [0.25, -1.5, float("inf")], [str(u), None]),
        (2, "Zoë — 東京 🚀 naïve", "ünïcödé", -32768, -2147483648, -9223372036854775808, float("-inf"),
         float("inf"), False, u, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=IST),
         datetime(1970, 1, 1), date(1900, 2, 28), "[]", '{"nested": {"k": "ü"}}', b"",
         [], [], [], []),
        (3, "", "", 32767, 2147483647, 9223372036854775807, 3.4e38, 1.7976931348623157e308, True,
         "ffffffff-ffff-ffff-ffff-ffffffffffff", datetime(2262, 4, 11, 23, 47, 16, tzinfo=PST),
         datetime(2000, 1, 1), date(2000, 1, 1), '"just a string"', "null", b"x" * 300,
         ["x" * 1000], [2147483647], [-0.0], [u]),
        (4, *([None] * (len(COLUMNS) - 1))),
        (5, "tab\tnew\nline \\ back", None, 0, 0, 0, -0.0, -0.0, None, None,
         datetime.max, datetime.min, date.max, None, '[1, 2, 3]', None, None, None, None, None),
        (6, "x" * 70_000, "x", 7, -7, -(2**40), 1e-45, 5e-324, False, uuid.UUID(int=0),
         datetime(2024, 6, 30, 0, 0, tzinfo=UTC), datetime(2024, 6, 30), date(1, 1, 1), "{}", "{}",
         None, [None], [None, None], [None, 1.0], [None]),
    ]


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _setup(conn: asyncpg.Connection, *tables: str) -> None:
    cols = ", ".join(f"{n} {t}" for n, t in COLUMNS.items())
    for table in tables:
        await conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({cols})")


async def _export(conn: asyncpg.Connection, table: str) -> bytes:
    chunks: list[bytes] = []

    async def collect(data: bytes) -> None:
        chunks.append(bytes(data))

    await conn.copy_from_query(f"SELECT {', '.join(NAMES)} FROM {table} ORDER BY k", output=collect, format="binary")
    return b"".join(chunks)


async def _stream(conn: asyncpg.Connection, table: str, rows: list[tuple[Any, ...]]) -> bytes:
    encoder = row_encoder(await column_types(conn, "public", table, NAMES))
    assert encoder is not None
    return COPY_HEADER + encoder.encode(rows) + COPY_TRAILER


def test_stream_equals_asyncpgs_bytes_for_every_type(fresh_db: DatabaseTarget) -> None:
    async def go() -> tuple[bytes, bytes, bytes, list[Any], list[Any]]:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await _setup(conn, "by_asyncpg", "by_hand")
            rows = _rows()
            await conn.copy_records_to_table("by_asyncpg", records=rows, columns=list(NAMES))
            reference = await _export(conn, "by_asyncpg")
            ours = await _stream(conn, "by_hand", rows)
            target = CopyTarget("by_hand", "public", "by_hand", NAMES)
            assert await copy_rows(conn, target, [rows[:2], rows[2:]], encoder="python") == len(rows)
            reloaded = await _export(conn, "by_hand")
            order = f"SELECT {', '.join(NAMES)} FROM {{}} ORDER BY k"
            back_ref = [tuple(r) for r in await conn.fetch(order.format("by_asyncpg"))]
            back_ours = [tuple(r) for r in await conn.fetch(order.format("by_hand"))]
            return reference, ours, reloaded, back_ref, back_ours
        finally:
            await conn.close()

    reference, ours, reloaded, back_ref, back_ours = _run(go())
    assert ours == reference
    assert reloaded == reference
    assert back_ours == back_ref
    # and the values are the ones written (spot checks against the inputs, not the encoder)
    by_k = {r[0]: r for r in back_ours}
    assert by_k[2][1] == "Zoë — 東京 🚀 naïve"
    assert by_k[2][5] == -9223372036854775808 and by_k[3][5] == 9223372036854775807
    assert by_k[2][7] == math.inf and by_k[2][6] == -math.inf
    assert by_k[2][10] == datetime(1999, 12, 31, 18, 29, 59, 999999, tzinfo=UTC)
    assert by_k[4][1:] == (None,) * (len(COLUMNS) - 1)
    assert by_k[1][16] == ["a", None, "Zoë"] and by_k[1][17] == [1, -2, None]
    assert len(by_k[6][1]) == 70_000


def test_values_of_other_python_types_are_taken_like_asyncpg(fresh_db: DatabaseTarget) -> None:
    """An int for a float, a UUID for a uuid, a naive datetime or a date for a timestamptz, a tuple for
    an array: the fast path does not take them, the per-value path must write what asyncpg writes."""
    u = uuid.uuid4()
    rows = [
        (10, "a", "b", True, False, 5, 3, 2, True, u, datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2),
         datetime(2024, 1, 2, 3, 4), '{"x": 1}', '{"x": 1}', bytearray(b"ab"), ("a", "b"), (1, 2), (1, 2), (u,)),
        (11, "a", "b", 1, 2, 3, 4, 5, False, str(u).upper(), date(2024, 1, 2), datetime(2024, 1, 2),
         date(2024, 1, 2), "1", "1", memoryview(b"cd"), ["z"], [3], [0.5], [str(u)]),
    ]

    async def go() -> tuple[bytes, bytes]:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await _setup(conn, "mixed_asyncpg", "mixed_hand")
            await conn.copy_records_to_table("mixed_asyncpg", records=rows, columns=list(NAMES))
            return await _export(conn, "mixed_asyncpg"), await _stream(conn, "mixed_hand", rows)
        finally:
            await conn.close()

    reference, ours = _run(go())
    assert ours == reference


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [("t", 5, "column t (text)"), ("i", 2**31, "column i (int4)"), ("u", "not-a-uuid", "column u (uuid)"),
     ("ok", 1, "column ok (bool)"), ("f8", "1.5", "column f8 (float8)"), ("f4", 1e39, "float32")],
)
def test_a_value_no_encoder_takes_fails_the_copy_naming_the_column(
    fresh_db: DatabaseTarget, column: str, value: Any, words: str
) -> None:
    good = _rows()[3]
    bad = tuple(value if name == column else v for name, v in zip(NAMES, (99, *good[1:]), strict=True))

    async def go() -> int:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await _setup(conn, "bad_values")
            target = CopyTarget("bad_values", "public", "bad_values", NAMES)
            with pytest.raises(asyncpg.DataError) as info:
                async with conn.transaction():
                    await copy_rows(conn, target, [[good], [bad]], encoder="python")
            assert words in str(info.value)
            return int(await conn.fetchval("SELECT count(*) FROM bad_values"))
        finally:
            await conn.close()

    assert _run(go()) == 0


def test_an_unknown_type_falls_back_to_asyncpgs_encoder(fresh_db: DatabaseTarget) -> None:
    async def go() -> tuple[bool, list[Any]]:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await conn.execute(
                "DROP TABLE IF EXISTS odd; DROP TYPE IF EXISTS mood; DROP DOMAIN IF EXISTS short_text;"
                "CREATE TYPE mood AS ENUM ('calm', 'busy');"
                "CREATE DOMAIN short_text AS text CHECK (length(VALUE) < 10);"
                "CREATE TABLE odd (k int, m mood, n numeric(12, 3), s short_text)"
            )
            types = await column_types(conn, "public", "odd", ("k", "m", "n", "s"))
            known = row_encoder([t for t in types if t.name in ("k", "s")]) is not None  # a domain is its base
            assert row_encoder(types) is None
            target = CopyTarget("odd", "public", "odd", ("k", "m", "n", "s"))
            rows = [(1, "calm", 1.5, "ok"), (2, "busy", None, None)]
            await copy_rows(conn, target, [rows], encoder="python")
            return known, [tuple(r) for r in await conn.fetch("SELECT k, m, n::text, s FROM odd ORDER BY k")]
        finally:
            await conn.close()

    known, back = _run(go())
    assert known
    assert back == [(1, "calm", "1.500", "ok"), (2, "busy", None, None)]


def test_a_domain_check_still_holds_on_the_hand_written_path(fresh_db: DatabaseTarget) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await conn.execute(
                "DROP TABLE IF EXISTS dom; DROP DOMAIN IF EXISTS tiny;"
                "CREATE DOMAIN tiny AS int CHECK (VALUE < 10); CREATE TABLE dom (k int, v tiny)"
            )
            target = CopyTarget("dom", "public", "dom", ("k", "v"))
            with pytest.raises(asyncpg.CheckViolationError):
                await copy_rows(conn, target, [[(1, 5), (2, 50)]], encoder="python")
        finally:
            await conn.close()

    _run(go())


COMPARED = {  # values that do not depend on the run's id or namespace
    "agents": "name, description, system_prompt, model_name, temperature, max_tokens, status, created_at, deleted_at",
    "workflows": "name, description, status, created_at",  # a definition names agent ids
    "mcp_servers": "name, transport, command, args, config, status, created_at",
    "users": "full_name, role, is_active, status, created_at",
}


def test_up_with_the_python_encoders_keeps_the_fingerprint(
    db_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same seed, same scale: the same fingerprint and the same rows whichever encoder wrote them."""

    async def contents(target: DatabaseTarget) -> dict[str, list[tuple[Any, ...]]]:
        conn = await asyncpg.connect(target.asyncpg_url)
        try:
            return {
                table: [tuple(r) for r in await conn.fetch(f"SELECT {cols} FROM {table} ORDER BY {cols}")]
                for table, cols in COMPARED.items()
            }
        finally:
            await conn.close()

    fingerprints, rows, dumps = {}, {}, {}
    for encoder in ("asyncpg", "python", "preencoded"):
        target = db_factory.new(schema="uuid")
        monkeypatch.setenv("PROVISION_COPY_ENCODER", encoder)
        result = up(target, tmp_path / encoder, scale="small", seed=7)
        fingerprints[encoder], rows[encoder], dumps[encoder] = result.fingerprint, result.rows, _run(contents(target))
    assert fingerprints["asyncpg"] == fingerprints["python"] == fingerprints["preencoded"]
    assert rows["asyncpg"] == rows["python"] == rows["preencoded"] > 0
    assert dumps["asyncpg"] == dumps["python"] == dumps["preencoded"]
    assert len(dumps["preencoded"]["agents"]) == 150


def test_columns_of_distinct_values_encode_the_same_after_the_cache_is_dropped(fresh_db: DatabaseTarget) -> None:
    """After its first batch the encoder stops caching columns of mostly distinct values; the
    bytes must not change with that (second and third batches here)."""
    base = _rows()
    rows = [
        (k, f"t-{k}-ü", base[k % 6][2], *base[k % 6][3:9], str(uuid.UUID(int=k)), *base[k % 6][10:13],
         f'{{"k": {k}}}', f'{{"k": {k}}}', *base[k % 6][15:])
        for k in range(900)
    ]

    async def go() -> tuple[bytes, bytes]:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        try:
            await _setup(conn, "distinct_asyncpg", "distinct_hand")
            await conn.copy_records_to_table("distinct_asyncpg", records=rows, columns=list(NAMES))
            encoder = row_encoder(await column_types(conn, "public", "distinct_hand", NAMES))
            assert encoder is not None
            parts = [encoder.encode(rows[k : k + 300]) for k in range(0, 900, 300)]
            return await _export(conn, "distinct_asyncpg"), COPY_HEADER + b"".join(parts) + COPY_TRAILER
        finally:
            await conn.close()

    reference, ours = _run(go())
    assert ours == reference
