"""Landing event files as users' folders hold them: gzip cut short or in several members, files that are not
what their name says, and the files Spark, Hadoop and macOS leave next to the data (DuckDB only)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activation_pipeline.compute import landing, sources
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.landing import UnreadableSourcesError
from activation_pipeline.compute.pipeline import ComputePipeline

from .conftest import make_workspace


def lines(first: int, last: int, bad_every: int = 0) -> bytes:
    """Track messages m<first> .. m<last - 1>, one a line, with a line that is not JSON after every `bad_every`th."""
    out = []
    for i in range(first, last):
        message = {
            "type": "track",
            "event": "Order Completed",
            "userId": f"u{i % 3}",
            "messageId": f"m{i}",
            "timestamp": f"2026-10-01T10:{i % 60:02d}:00Z",
        }
        out.append(json.dumps(message) + "\n")
        if bad_every and i % bad_every == 0:
            out.append("not json\n")
    return "".join(out).encode()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[ComputePipeline]:
    """A pipeline on a DuckDB file, landing tmp_path/events."""
    engine = ComputeEngine(url=f"duckdb:///{tmp_path / 'compute.duckdb'}", schema="odd")
    pipeline = ComputePipeline(make_workspace(tmp_path), engine)
    yield pipeline
    pipeline.close()


def stored(pipeline: ComputePipeline) -> list[dict[str, Any]]:
    events = pipeline.engine.tables.events
    return pipeline.read(events.select().order_by(events.c.source, events.c.line)).to_pylist()


def manifest(pipeline: ComputePipeline) -> set[str]:
    return {r["source"] for r in pipeline.read(pipeline.engine.tables.landings.select()).to_pylist()}


def test_a_gzip_file_cut_short_is_named_the_rest_lands_and_it_lands_once_complete(
    tmp_path: Path, pipeline: ComputePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload in progress: the run names the file and why, lands the other files (a copy of one of its messages
    in a later file too), keeps nothing it gave; once complete, it lands whole, without duplicates."""
    # Small blocks, parses and row groups: part of the cut file is parsed and stored before its end is found.
    monkeypatch.setattr(sources, "CHUNK_BYTES", 256)
    monkeypatch.setattr(landing, "PARSE_ROWS", 16)
    monkeypatch.setattr(landing, "ROW_GROUP", 4)
    events = tmp_path / "events"
    whole = gzip.compress(lines(0, 40, bad_every=10))
    (events / "a.jsonl").write_bytes(lines(1000, 1010))
    (events / "b.jsonl.gz").write_bytes(whole[: len(whole) * 6 // 10])
    (events / "c.jsonl").write_bytes(lines(20, 25) + b"not json\n")
    with pytest.raises(UnreadableSourcesError, match=r"b\.jsonl\.gz: the gzip stream ends early") as raised:
        pipeline.land()
    summary = raised.value.summary
    assert (summary.new_sources, summary.events, summary.quarantined, summary.duplicates) == (2, 15, 1, 0)
    assert summary.reasons == {"not valid JSON": 1}
    assert {e["source"] for e in stored(pipeline)} == {"a.jsonl", "c.jsonl"}
    assert pipeline.quarantine().column("source").to_pylist() == ["c.jsonl"]
    assert manifest(pipeline) == {"a.jsonl", "c.jsonl"}

    (events / "b.jsonl.gz").write_bytes(whole)
    complete = pipeline.land()
    assert (complete.new_sources, complete.unchanged_sources) == (1, 2)
    assert (complete.events, complete.duplicates, complete.quarantined) == (35, 5, 4)
    ids = [e["message_id"] for e in stored(pipeline)]
    assert len(ids) == len(set(ids)) == 50
    assert pipeline.quarantine().num_rows == 5


def test_files_that_are_not_what_their_name_says_are_named_and_the_rest_lands(
    tmp_path: Path, pipeline: ComputePipeline
) -> None:
    events = tmp_path / "events"
    (events / "a.jsonl").write_bytes(lines(0, 3))
    (events / "empty.parquet").write_bytes(b"")  # a writer that has not finished, or a failed task
    (events / "plain.gz").write_bytes(lines(3, 4))
    with pytest.raises(UnreadableSourcesError) as raised:
        pipeline.land()
    assert set(raised.value.files) == {"empty.parquet", "plain.gz"}
    assert raised.value.files["plain.gz"].startswith("not valid gzip")
    assert raised.value.files["empty.parquet"].startswith("not a readable Parquet file")
    assert "2 event file(s) could not be read" in str(raised.value)
    assert (raised.value.summary.events, manifest(pipeline)) == (3, {"a.jsonl"})


def test_gzip_members_empty_files_and_blank_files_land_as_their_lines(
    tmp_path: Path, pipeline: ComputePipeline
) -> None:
    """`cat a.gz b.gz > c.gz` is one file of both members' lines; a zero-byte or blank file gives nothing."""
    events = tmp_path / "events"
    (events / "joined.gz").write_bytes(gzip.compress(lines(0, 50)) + gzip.compress(lines(50, 120)))
    (events / "zero.jsonl").write_bytes(b"")
    (events / "zero.jsonl.gz").write_bytes(b"")
    (events / "nothing.jsonl.gz").write_bytes(gzip.compress(b""))
    (events / "blank.jsonl").write_bytes(b"\xef\xbb\xbf\n\r\n  \n")
    summary = pipeline.land()
    assert (summary.new_sources, summary.events, summary.quarantined) == (5, 120, 0)
    assert [e["line"] for e in stored(pipeline)] == list(range(1, 121))


def test_files_and_folders_hidden_by_a_dot_or_underscore_are_not_landed(
    tmp_path: Path, pipeline: ComputePipeline
) -> None:
    """Spark's `_temporary/` output in progress, `_SUCCESS`, `.crc` files and macOS's `._` files are left alone."""
    events = tmp_path / "events"
    (events / "part-0000.jsonl").write_bytes(lines(0, 2))
    (events / "_SUCCESS").write_bytes(b"")
    (events / ".part-0000.jsonl.crc").write_bytes(b"crc\x00")
    (events / "._part-0000.jsonl").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (events / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (events / "_temporary" / "0").mkdir(parents=True)
    (events / "_temporary" / "0" / "part-0001.jsonl").write_bytes(lines(2, 3)[:-10])
    (events / "src" / "2026-10-01").mkdir(parents=True)
    (events / "src" / "2026-10-01" / "1759276800.abc.gz").write_bytes(gzip.compress(lines(3, 5)))
    summary = pipeline.land()
    assert (summary.new_sources, summary.events, summary.quarantined) == (2, 4, 0)
    assert manifest(pipeline) == {"part-0000.jsonl", "src/2026-10-01/1759276800.abc.gz"}
