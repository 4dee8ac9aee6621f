"""An in-memory index from lookup key to profile id for DuckDB versions: a probe instead of a query.

DuckDB answers a point query in about a millisecond whatever its size, most of it fixed cost, so the key ->
profile id step (over every identifier of every profile) is done from two sorted arrays of a 60-bit hash of
the key instead. A hash says where to look, never what is true: the profile it names is checked to hold the
key, and a key whose hash is shared, or that the profile does not hold, is looked up in the table.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any

import numpy as np
import sqlalchemy as sa

HEX_DIGITS = 15
"""60 bits of md5: fits a signed BIGINT in DuckDB and PostgreSQL alike."""


class Probe(Enum):
    """What the index can say besides a profile id."""

    ABSENT = "absent"
    """No stored key has this hash, so the key is not stored."""
    ASK_TABLE = "ask_table"
    """Several stored keys share this hash."""


def key_hash(key: str) -> int:
    """The hash of a lookup key, as `key_hash_sql` computes it."""
    return int(hashlib.md5(key.encode()).hexdigest()[:HEX_DIGITS], 16)  # noqa: S324 (an index, not security)


def key_hash_sql(column: Any) -> sa.ColumnElement[int]:
    """The same hash in SQL (DuckDB)."""
    return sa.cast(sa.literal("0x") + sa.func.substr(sa.func.md5(column), 1, HEX_DIGITS), sa.BigInteger)


class KeyIndex:
    """Sorted key hashes and the profile id of each."""

    def __init__(self, hashes: np.ndarray, profile_ids: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[order]
        self.profile_ids = profile_ids[order]

    def probe(self, key: str) -> int | Probe:
        """The profile id the key's hash names, ABSENT, or ASK_TABLE when the hash is shared."""
        h = key_hash(key)
        i = int(np.searchsorted(self.hashes, h))
        if i == len(self.hashes) or self.hashes[i] != h:
            return Probe.ABSENT
        if i + 1 < len(self.hashes) and self.hashes[i + 1] == h:
            return Probe.ASK_TABLE
        return int(self.profile_ids[i])
