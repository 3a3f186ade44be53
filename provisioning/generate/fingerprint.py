"""The dataset fingerprint: one sha256 that proves two runs generated the same data.

What is hashed is each row's *canonical form* (see ``rows.py``): the row with database
ids replaced by (table, index), the run's namespace token left out and password hashes
replaced by their slot — so two runs with the same seed, scale and toolkit version
share a fingerprint even though their ids, slugs, emails and bcrypt salts differ.
Long pooled strings (prompts, workflow templates) appear as pool indices; the pools
themselves are hashed once (``Pools.digest``).

Canonical rows are hashed in fixed chunks of ``CHUNK_ROWS`` rows, independent of the
COPY batch size, so the fingerprint does not depend on how the rows were streamed, and
tables (or aligned ranges of one table) may be streamed in any order.  The cost is an
``list.extend`` per row, plus ``marshal`` and sha256 per chunk (≈ 10 % of generation).
"""

from __future__ import annotations

import hashlib
import json
import marshal
from collections.abc import Mapping

__all__ = ["CHUNK_ROWS", "FORMAT", "FingerprintAccumulator", "chunk_digest"]

FORMAT = "agentic-loadkit/fingerprint/1"
CHUNK_ROWS = 8192


def chunk_digest(canon: list[int]) -> bytes:
    """The digest of one chunk's canonical integers.

    ``marshal`` format 2 is used as a fast, stable serialisation: it has no object
    references (so the bytes do not depend on interning or reference counts) and
    encodes ints independently of the host's byte order.
    """
    return hashlib.sha256(marshal.dumps(canon, 2)).digest()


class FingerprintAccumulator:
    """Collects chunk digests per table; the fingerprint exists once every chunk is in."""

    def __init__(self, header: Mapping[str, object], pools_digest: bytes, counts: Mapping[str, int]) -> None:
        document = {"format": FORMAT, **header}
        self._header = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
        self._pools_digest = pools_digest
        self._counts = dict(counts)
        self._chunks: dict[str, list[bytes | None]] = {
            table: [None] * -(-count // CHUNK_ROWS) for table, count in counts.items()
        }

    def record(self, table: str, chunks: Mapping[int, bytes]) -> None:
        """Store the digests of fully generated and consumed chunks (chunk number → digest)."""
        slots = self._chunks[table]
        for number, digest in chunks.items():
            slots[number] = digest

    def reset(self, table: str, first_chunk: int, stop_chunk: int) -> None:
        """Forget chunks about to be regenerated (a retried stream must not count twice)."""
        slots = self._chunks[table]
        for number in range(first_chunk, min(stop_chunk, len(slots))):
            slots[number] = None

    def missing(self) -> list[str]:
        """Tables that still have chunks not generated and consumed."""
        return [table for table, slots in self._chunks.items() if any(d is None for d in slots)]

    def table_digest(self, table: str) -> str:
        slots = self._chunks[table]
        if any(d is None for d in slots):
            raise RuntimeError(f"table {table} was not fully streamed; its digest is not known yet")
        h = hashlib.sha256(table.encode() + b"\0" + str(self._counts[table]).encode())
        for digest in slots:
            assert digest is not None
            h.update(digest)
        return h.hexdigest()

    def hexdigest(self) -> str:
        """The fingerprint (sha256 hex); ``RuntimeError`` while any table is incomplete."""
        missing = self.missing()
        if missing:
            raise RuntimeError(
                f"the fingerprint needs every table streamed to the end; incomplete: {', '.join(missing)}"
            )
        h = hashlib.sha256(self._header)
        h.update(self._pools_digest)
        for table in self._chunks:
            h.update(self.table_digest(table).encode())
        return h.hexdigest()
