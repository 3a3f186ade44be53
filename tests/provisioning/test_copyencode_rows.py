"""The pre-encoded row path: generated tables written straight as binary COPY tuples.

Its bytes must be the bytes of the same rows as tuples through the Python encoder (whose
output test_copyencode.py checks against asyncpg's, type by type), and what it loads must
be what asyncpg's own encoder loads; the fingerprint must not depend on the path; and it
must decline (so that the caller streams tuples) whatever it cannot write.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import pytest
from agentic_loadkit.provisioning.generate.dataset import (
    TABLE_COLUMNS,
    Dataset,
    GenerationSpec,
    IdSpace,
    IntegerIds,
    RowBatches,
    UuidIds,
)
from agentic_loadkit.provisioning.generate.ids import id_access
from agentic_loadkit.provisioning.generate.scales import ScaleCounts
from agentic_loadkit.provisioning.progress import ProgressEvent
from agentic_loadkit.provisioning.schema.concepts import CONTRACT_TABLES
from agentic_loadkit.provisioning.target.copyencode import ColumnType, row_encoder
from agentic_loadkit.provisioning.target.copyfields import fields_of
from agentic_loadkit.provisioning.target.copyload import CopyTarget, copy_rows
from agentic_loadkit.provisioning.target.url import DatabaseTarget

COUNTS = ScaleCounts(7, 120, 2_600, 1_300, 700, 60)
OIDS = {"text": 25, "uuid": 2950, "int8": 20, "int4": 23, "float8": 701, "float4": 700, "timestamptz": 1184,
        "jsonb": 3802, "json": 114, "bool": 16, "timestamp": 1114}
SQL_TYPES = {"text": "text", "uuid": "uuid", "int8": "bigint", "int4": "integer", "float8": "float8",
             "float4": "real", "timestamptz": "timestamptz", "jsonb": "jsonb", "json": "json"}


def _kinds(table: str, key: str, definition: str = "jsonb", temperature: str = "float8") -> list[str]:
    """The guide schema's column kinds (``key`` for ids and references)."""
    return {
        "agents": [key, key, key, "text", "text", "text", "text", "text", "text", temperature, "int4", "text",
                   "timestamptz", "timestamptz", "timestamptz"],
        "workflows": [key, key, key, "text", "text", "text", definition, "text", "timestamptz"],
        "collections": [key, key, "text", "text", "text", "text", "text", "timestamptz"],
    }[table]


def _dataset(extended: frozenset[str] = frozenset(), counts: ScaleCounts = COUNTS) -> Dataset:
    spec = GenerationSpec(seed=11, namespace="pre1", counts=counts, deleted_agent_share=0.2)
    return Dataset(spec, [f"slot-{k}" for k in range(spec.password_slots)], extended=extended)


def _ids(key: str) -> IdSpace:
    return UuidIds("pre1") if key == "uuid" else IntegerIds({t: 10 * (k + 1) for k, t in enumerate(CONTRACT_TABLES)})


def _encoded(batches: RowBatches, kinds: Sequence[str]) -> list[tuple[bytes, int]]:
    source = batches.encoded(kinds)
    assert source is not None
    return list(source)


def _drain(dataset: Dataset, ids: IdSpace, skip: str) -> None:
    for stream in dataset.streams:
        if stream.table != skip:
            for _ in stream.batches(ids):
                pass


@pytest.mark.parametrize(
    ("table", "key", "definition", "temperature"),
    [
        ("agents", "uuid", "jsonb", "float8"),
        ("agents", "int8", "jsonb", "float4"),
        ("workflows", "uuid", "jsonb", "float8"),
        ("workflows", "int4", "json", "float8"),
        ("workflows", "uuid", "text", "float8"),
        ("collections", "int8", "jsonb", "float8"),
        ("collections", "uuid", "jsonb", "float8"),
    ],
)
def test_encoded_rows_are_the_encoded_tuples(table: str, key: str, definition: str, temperature: str) -> None:
    kinds = _kinds(table, key, definition, temperature)
    encoder = row_encoder([ColumnType(f"c{i}", OIDS[k], k) for i, k in enumerate(kinds)])
    assert encoder is not None
    by_tuples, by_bytes = _dataset(), _dataset()
    tuples = list(by_tuples.stream(table).batches(_ids(key), 500))
    encoded = _encoded(by_bytes.stream(table).batches(_ids(key), 500), kinds)
    assert [n for _, n in encoded] == [len(b) for b in tuples]
    assert [data for data, _ in encoded] == [encoder.encode(b) for b in tuples]
    _drain(by_tuples, _ids(key), table)
    _drain(by_bytes, _ids(key), table)
    assert by_bytes.fingerprint() == by_tuples.fingerprint()


def test_pieces_of_a_table_make_the_whole_and_the_same_fingerprint() -> None:
    kinds = _kinds("agents", "uuid")
    counts = ScaleCounts(7, 120, 20_000, 10, 10, 10)  # agents in three fingerprint chunks
    whole, pieces = _dataset(counts=counts), _dataset(counts=counts)
    all_at_once = b"".join(d for d, _ in _encoded(whole.stream("agents").batches(_ids("uuid"), 700), kinds))
    stream = pieces.stream("agents")
    parts = [_encoded(stream.batches(_ids("uuid"), 300, start=a, stop=b), kinds) for a, b in stream.ranges(3)]
    assert len(parts) == 3
    assert b"".join(d for part in parts for d, _ in part) == all_at_once
    _drain(whole, _ids("uuid"), "agents")
    _drain(pieces, _ids("uuid"), "agents")
    assert pieces.fingerprint() == whole.fingerprint()


@pytest.mark.parametrize(
    ("table", "kinds"),
    [
        ("users", ["uuid"] * 2 + ["text"] * 5 + ["bool", "text", "timestamptz"]),  # no builder for users
        ("agents", _kinds("agents", "uuid")[:-1]),  # a column short
        ("agents", [*_kinds("agents", "uuid")[:9], "text", *_kinds("agents", "uuid")[10:]]),  # a float as text
        ("agents", [*_kinds("agents", "uuid")[:4], "jsonb", *_kinds("agents", "uuid")[5:]]),  # slug as jsonb
        ("agents", [*_kinds("agents", "uuid")[:12], "timestamp", *_kinds("agents", "uuid")[13:]]),  # naive
        ("workflows", ["int8", *_kinds("workflows", "uuid")[1:]]),  # uuid keys into a bigint column
        ("collections", [*_kinds("collections", "uuid")[:2], "bool", *_kinds("collections", "uuid")[3:]]),
    ],
)
def test_what_it_cannot_write_is_declined_and_the_tuples_still_come(table: str, kinds: list[str]) -> None:
    dataset, reference = _dataset(), _dataset()
    batches = dataset.stream(table).batches(_ids("uuid"), 400)
    assert batches.encoded(kinds) is None
    assert list(batches) == list(reference.stream(table).batches(_ids("uuid"), 400))


def test_extended_tables_and_started_batches_are_declined() -> None:
    extended = _dataset(frozenset({"agents"}))
    assert extended.stream("agents").batches(_ids("uuid")).encoded(_kinds("agents", "uuid")) is None
    batches = _dataset().stream("collections").batches(_ids("uuid"), 100)
    first = next(batches)
    assert len(first) == 100
    assert batches.encoded(_kinds("collections", "uuid")) is None
    assert sum(len(b) for b in batches) == COUNTS.collections - 100


def test_bulk_uuid_fields_match_the_per_value_ones() -> None:
    canonical = [UuidIds("pre1").id("agents", k) for k in range(50)]
    odd = ["3C7CCDB576BF84A8800000000000002A", "3c7ccdb5-76bf-84a8-8000-00000000002a"]
    assert fields_of("uuid", canonical) == [fields_of("uuid", [v])[0] for v in canonical]
    assert fields_of("uuid", odd) == [fields_of("uuid", [v])[0] for v in odd]
    assert fields_of("uuid", [canonical[0], None]) == [fields_of("uuid", canonical[:1])[0], b"\xff\xff\xff\xff"]
    with pytest.raises(ValueError):
        fields_of("uuid", ["3c7ccdb5-76bf-84a8-8000-00000000002g"])
    with pytest.raises(ValueError):
        fields_of("uuid", ["3c7ccdb5-76bf-84a8-8000-0000000 002a"])


class _Spy(RowBatches):
    """Records which kinds the COPY loop asked for and whether it got bytes."""

    asked: list[tuple[list[str], bool]]

    def encoded(self, kinds: Sequence[str]) -> Iterator[tuple[bytes, int]] | None:
        source = super().encoded(kinds)
        self.asked.append((list(kinds), source is not None))
        return source


def _spy(dataset: Dataset, table: str, ids: IdSpace, batch_size: int) -> _Spy:
    stream = dataset.stream(table)
    spy = _Spy(stream, id_access(ids, dataset.context.offsets), batch_size, 0, stream.count)
    spy.asked = []
    return spy


def test_the_server_gets_what_asyncpgs_encoder_gives_it(fresh_db: DatabaseTarget) -> None:
    table_kinds = {t: _kinds(t, "uuid") for t in ("agents", "workflows", "collections")}

    async def export(conn: asyncpg.Connection, name: str) -> bytes:
        chunks: list[bytes] = []

        async def collect(data: bytes) -> None:
            chunks.append(bytes(data))

        await conn.copy_from_query(f"SELECT * FROM {name} ORDER BY id", output=collect, format="binary")
        return b"".join(chunks)

    async def go() -> list[tuple[Any, ...]]:
        conn = await asyncpg.connect(fresh_db.asyncpg_url)
        results = []
        try:
            by_asyncpg, by_bytes = _dataset(), _dataset()
            for table, kinds in table_kinds.items():
                columns = TABLE_COLUMNS[table]
                body = ", ".join(f"{c} {SQL_TYPES[k]}" for c, k in zip(columns, kinds, strict=True))
                for name in (f"{table}_asyncpg", f"{table}_pre"):
                    await conn.execute(f"DROP TABLE IF EXISTS {name}; CREATE TABLE {name} ({body})")
                plain = CopyTarget(table, "public", f"{table}_asyncpg", columns)
                n_ref = await copy_rows(conn, plain, by_asyncpg.stream(table).batches(_ids("uuid"), 600),
                                        encoder="asyncpg")
                spy = _spy(by_bytes, table, _ids("uuid"), 600)
                counted = Counter[str]()

                def count(event: ProgressEvent, counted: Counter[str] = counted) -> None:
                    counted[event.kind] += event.count or 0

                n_pre = await copy_rows(conn, CopyTarget(table, "public", f"{table}_pre", columns), spy,
                                        encoder="preencoded", progress=count)
                results.append((table, n_ref, n_pre, spy.asked, counted["rows"],
                                await export(conn, f"{table}_asyncpg"), await export(conn, f"{table}_pre")))
        finally:
            await conn.close()
        return results

    for table, n_ref, n_pre, asked, counted, ref, ours in asyncio.run(go()):
        assert n_pre == n_ref == counted == getattr(COUNTS, table)
        assert asked == [(table_kinds[table], True)]
        assert ours == ref
