"""The in-memory key index: the same hash in Python and DuckDB SQL, and what a probe may answer."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa

from activation_pipeline.serving.keys import KeyIndex, Probe, key_hash, key_hash_sql

KEYS = ["email:jane.doe@example.com", "phone:+12015550123", "user_id:ü-ñ 1", "use_9223372036854775807", ""]


def test_python_and_duckdb_hash_keys_alike() -> None:
    engine = sa.create_engine("duckdb:///:memory:")
    with engine.connect() as conn:
        for key in KEYS:
            assert conn.execute(sa.select(key_hash_sql(sa.literal(key)))).scalar() == key_hash(key), key
    assert all(0 <= key_hash(k) < 2**60 for k in KEYS)


def test_probe_names_the_profile_or_says_absent_or_ask() -> None:
    hashes = np.array([key_hash("a:1"), key_hash("b:2"), key_hash("b:2")], dtype=np.int64)
    index = KeyIndex(hashes, np.array([10, 20, 30], dtype=np.int64))
    assert index.probe("a:1") == 10
    assert index.probe("b:2") is Probe.ASK_TABLE
    assert index.probe("c:3") is Probe.ABSENT
    assert KeyIndex(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).probe("a:1") is Probe.ABSENT
