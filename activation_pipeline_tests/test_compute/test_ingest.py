"""Parsing and quarantine of Segment messages, and landing by source manifest (files known by path, size, hash)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from activation_pipeline.compute import landing, sources
from activation_pipeline.compute.engine import ComputeEngine, duckdb_memory_limit
from activation_pipeline.compute.event_columns import referenced_columns
from activation_pipeline.compute.identity import profile_id_for
from activation_pipeline.compute.ingest import RAW_SCHEMA, SUSPECT_SQL, MessageParser, Parsed
from activation_pipeline.compute.landing import LegacySchemaError
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.schema import MESSAGE_HASH_PROBE
from activation_pipeline.compute.sqlutil import table_columns
from activation_pipeline.config import Workspace
from activation_pipeline.identifiers import canonical_identifier

from .conftest import at, by_profile, make_workspace

GOOD = {"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}
COUNTERS = """
traits:
  computed:
    - {key: orders, type: counter, event: Order Completed}
    - {key: revenue, type: aggregation, function: sum, event: Order Completed, property: revenue}
"""


def parse(workspace: Workspace, *messages: Any) -> Parsed:
    """Parse messages (dicts are written as JSON, strings are taken as the raw line)."""
    lines = [m if isinstance(m, str) else json.dumps(m) for m in messages]
    raw = pa.table(
        {"source": ["f.jsonl"] * len(lines), "line": list(range(1, len(lines) + 1)), "raw": lines},
        schema=RAW_SCHEMA,
    )
    parser = MessageParser(workspace, referenced_columns(workspace))
    try:
        return parser.parse(raw)
    finally:
        parser.close()


def set_texts(parsed: Parsed) -> list[Any]:
    """Each event's identifier set, as its text decodes (from the parse's one row per set)."""
    texts = dict(
        zip(parsed.sets.column("set_hash").to_pylist(), parsed.sets.column("ids").to_pylist(), strict=True)
    )
    return [json.loads(texts[h]) for h in parsed.events.column("set_hash").to_pylist()]


def message(i: int, when: datetime, user: str, event: str = "Order Completed", **props: Any) -> str:
    """One track message as a JSON line."""
    return json.dumps(
        {
            "type": "track",
            "messageId": f"m{i}",
            "event": event,
            "userId": user,
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "properties": props,
        }
    )


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('{"type": "track", "userId": "u1", "timest', "not valid JSON"),
        ([1, 2], "not a JSON object"),
        ({**GOOD, "type": "trak"}, "unknown type 'trak'"),
        ({k: v for k, v in GOOD.items() if k != "type"}, "no type"),
        ({**GOOD, "type": 3}, "no type"),
        ({k: v for k, v in GOOD.items() if k != "userId"}, "no userId or anonymousId"),
        ({**GOOD, "userId": True}, "no userId or anonymousId"),
        ({**GOOD, "userId": "   "}, "no userId or anonymousId"),
        ({k: v for k, v in GOOD.items() if k != "event"}, "track without event"),
        ({**GOOD, "event": "  "}, "track without event"),
        ({**GOOD, "timestamp": "10/01/2026 10:00:00"}, "timestamp not ISO-8601"),
        ({**GOOD, "timestamp": "yesterday"}, "timestamp not ISO-8601"),
        ({**GOOD, "timestamp": 1759312800}, "timestamp not ISO-8601"),
        ({k: v for k, v in GOOD.items() if k != "timestamp"}, "no timestamp"),
        ({**GOOD, "properties": "revenue=5"}, "properties is not an object"),
        ({**GOOD, "traits": [1]}, "traits is not an object"),
        ({**GOOD, "context": 5}, "context is not an object"),
        ({"type": "group", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}, "group without groupId"),
        ({"type": "alias", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}, "alias without previousId"),
        # Valid to DuckDB's reader, but poison for what reads events later (PostgreSQL, Python, destinations).
        (json.dumps(GOOD)[:-1] + ', "properties": {"revenue": NaN}}', "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"revenue": -Infinity}}', "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"items": [1, inf]}}', "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"revenue": 1e400}}', "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"n": ' + "9" * 400 + "}}", "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"n": [0.5,\n\t-1.5E+400]}}', "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"n": ' + "1" * 250 + "e99}}", "number is NaN or infinite"),
        (json.dumps(GOOD)[:-1] + ', "properties": {"n" :  -nAn}}', "number is NaN or infinite"),
        (
            json.dumps(GOOD)[:-1] + ', "properties": ' + '{"a": ' * 70 + "1" + "}" * 71,
            "nested deeper than 64 levels",
        ),
        (
            json.dumps(GOOD)[:-1] + ', "properties": {"a": ' + "[" * 100_000 + "]" * 100_000 + "}}",
            "nested deeper than 64 levels",
        ),
        ({**GOOD, "properties": {"note": "a\x00b"}}, "contains a NUL character (\\u0000)"),
        ({**GOOD, "userId": "u\ud800"}, "not valid JSON"),
        ({**GOOD, "timestamp": "0001-01-01T00:00:00+14:00"}, "timestamp out of range (1900 to 2199)"),
        ({**GOOD, "timestamp": "9999-12-31T23:59:59-14:00"}, "timestamp out of range (1900 to 2199)"),
    ],
)
def test_unusable_messages_are_quarantined_with_reason(tmp_path: Path, message: object, reason: str) -> None:
    parsed = parse(make_workspace(tmp_path), message)
    assert parsed.events.num_rows == 0
    assert parsed.quarantine.to_pylist() == [
        {
            "source": "f.jsonl",
            "line": 1,
            "reason": reason,
            "raw": message if isinstance(message, str) else json.dumps(message),
        }
    ]


def test_lookalikes_of_poison_are_kept(tmp_path: Path) -> None:
    """Texts that only look like NaN, deep nesting or a NUL are ordinary values; "NaN" as a string is no number."""
    workspace = make_workspace(tmp_path, COUNTERS)
    lookalikes = [
        {**GOOD, "messageId": "a", "properties": {"note": ": NaN, [inf, 1e400 \\u0000", "revenue": "NaN"}},
        {**GOOD, "messageId": "b", "properties": {"note": "[" * 200, "revenue": 1e300}},
        {
            **GOOD,
            "messageId": "c",
            "properties": {"deep": json.loads("[" * 62 + "]" * 62), "revenue": "1e999"},
        },
    ]
    parsed = parse(workspace, *lookalikes)
    assert parsed.quarantine.num_rows == 0
    revenue = next(c.name for c in referenced_columns(workspace) if c.kind == "number")
    assert parsed.events.column(revenue).to_pylist() == [None, 1e300, None]


def test_identifiers_inside_strings_do_not_look_suspect(tmp_path: Path) -> None:
    """UUIDs and hex ids (`...-4e123...`) are strings: the SQL filter sends no ordinary line to Python's check."""
    ids = [str(uuid.UUID(int=random.Random(n).getrandbits(128))) for n in range(2_000)]
    lines = [
        json.dumps({**GOOD, "messageId": i, "anonymousId": i.upper(), "properties": {"sku": "9E999"}})
        for i in ids
    ]
    lines += [line[:-1] + ', "tags": ["a1e234", 5]}' for line in lines[:200]]  # arrays take the full pattern
    assert sum(bool(re.search(r"[0-9][eE][0-9]{3}", line)) for line in lines) > 100  # the old filter's trap
    parser = MessageParser(make_workspace(tmp_path), [])
    try:
        parser.db.register("raw_input", pa.table({"raw": lines}))
        suspect = parser.db.execute(f"SELECT count(*) FROM raw_input WHERE {SUSPECT_SQL}").fetchone()
    finally:
        parser.close()
    assert suspect == (0,)


def test_fields_timestamps_and_fallbacks(tmp_path: Path) -> None:
    parsed = parse(
        make_workspace(tmp_path),
        {**GOOD, "timestamp": "2026-10-01T12:00:00+02:00", "messageId": " m1 ", "event": " Order Completed "},
        {**GOOD, "timestamp": None, "originalTimestamp": "2026-10-02T08:00:00Z", "receivedAt": "2026-10-03"},
        {"type": "page", "name": "Home", "anonymousId": 7, "receivedAt": "2026-10-04T00:00:00.123456Z"},
    )
    rows = parsed.events.to_pylist()
    assert [(r["message_id"], r["event"], r["timestamp"]) for r in rows[:1]] == [
        ("m1", "Order Completed", datetime(2026, 10, 1, 10))
    ]
    assert rows[1]["timestamp"] == datetime(2026, 10, 2, 8) and rows[1]["received_at"] == datetime(
        2026, 10, 3
    )
    assert rows[1]["message_id"].startswith("gen-")
    assert (rows[2]["type"], rows[2]["event"], rows[2]["anonymous_id"]) == ("page", "Home", "7")
    assert rows[2]["timestamp"] == datetime(2026, 10, 4, 0, 0, 0, 123456)


@pytest.mark.parametrize(
    "written",
    ["2026-10-01T10:00:00Z", "2026-10-01T10:00:00.1Z", "2026-10-01T10:00:00.123Z", "2026-10-01T10:00:00.123456Z",
     "2026-10-01T10:00:00.1234567Z", "2026-10-01T24:00:00Z", "2026-10-01 10:00:00Z", "2026-10-01T10:00Z",
     "2026-10-01T10:00:00 Z", "2026-10-01T12:00:00+02:00Z", "2026-10-01T10:00:00.Z", "2026-02-30T10:00:00Z"],
)  # fmt: skip
def test_timestamps_in_segment_form_read_as_the_general_iso_reading(tmp_path: Path, written: str) -> None:
    # The parser reads Segment's own form ('...Z') by an exact format, the rest by DuckDB's general ISO cast.
    parsed = parse(make_workspace(tmp_path), {**GOOD, "timestamp": written})
    general = parse_general_iso(written)
    if general is None:
        assert parsed.reasons() == {"timestamp not ISO-8601": 1}
    else:
        assert parsed.events.column("timestamp").to_pylist() == [general]


def parse_general_iso(text: str) -> datetime | None:
    """DuckDB's general reading of an ISO-8601 text, in UTC (None when it is not one)."""
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        rows = db.execute("SELECT TRY_CAST($1 AS TIMESTAMPTZ)::TIMESTAMP", [text]).fetchall()
    value: datetime | None = rows[0][0]
    return value


def test_set_texts_are_compact_json_whatever_the_values_hold(tmp_path: Path) -> None:
    # A set's hash is of its text: the text must stay byte for byte what earlier versions wrote.
    user = 'u"1\\/\x01 é 😀'
    parsed = parse(
        make_workspace(tmp_path),
        {**GOOD, "userId": user, "anonymousId": "a1"},
        {"type": "alias", "userId": "u9", "previousId": "a\n9", "timestamp": "2026-10-01T10:00:00Z"},
    )
    texts = parsed.sets.column("ids").to_pylist()
    assert sorted(texts) == sorted(
        [
            json.dumps(
                [["user_id", user], ["anonymous_id", "a1"]], separators=(",", ":"), ensure_ascii=False
            ),
            json.dumps(
                [["user_id", "u9"], ["previous_id", "a\n9"]], separators=(",", ":"), ensure_ascii=False
            ),
        ]
    )


def test_identifiers_are_extracted_and_normalised(tmp_path: Path) -> None:
    workspace = make_workspace(
        tmp_path,
        base="""
workspace: t
sources: {events: {path: events/}}
identity:
  identifiers:
    user_id: {limit: 1}
    email: {}
    phone: {}
    anonymous_id: {}
    ios.idfa: {}
    android.id: {}
    crm_id: {custom: true, trait: crm.id}
""",
    )
    parsed = parse(
        workspace,
        {
            "type": "identify",
            "userId": 42,
            "anonymousId": " a1 ",
            "timestamp": "2026-10-01T12:00:00+02:00",
            "traits": {"email": "  Ann@Example.COM ", "phone": "(212) 555-0101", "crm": {"id": "CRM-1"}},
            "context": {"device": {"type": "ios", "advertisingId": "IDFA-1"}},
        },
        {
            **GOOD,
            "context": {"traits": {"email": "B@x.com"}, "device": {"type": "android", "advertisingId": "g"}},
        },
        {"type": "alias", "userId": "u9", "previousId": "a9", "timestamp": "2026-10-01T10:00:00Z"},
        {"type": "alias", "userId": "u9", "previousId": "u9", "timestamp": "2026-10-01T10:00:00Z"},
    )
    rows, ids = parsed.events.to_pylist(), set_texts(parsed)
    assert "ids" not in rows[0]  # kept once per set, not on every event
    assert ids[0] == [
        ["user_id", "42"],
        ["email", "ann@example.com"],
        ["phone", "+12125550101"],
        ["anonymous_id", "a1"],
        ["ios.idfa", "IDFA-1"],
        ["crm_id", "CRM-1"],
    ]
    assert rows[0]["timestamp"] == datetime(2026, 10, 1, 10)
    assert json.loads(rows[0]["traits"])["email"] == "  Ann@Example.COM "  # raw value kept for activation
    assert ids[1] == [["user_id", "u1"], ["email", "b@x.com"], ["android.id", "g"]]
    assert ids[2] == [["user_id", "u9"], ["previous_id", "a9"]]
    assert ids[3] == [["user_id", "u9"]]
    keys = parsed.set_keys.to_pylist()
    first = [k for k in keys if k["set_hash"] == rows[0]["set_hash"]]
    assert sorted((k["pos"], k["identifier_type"], k["value"]) for k in first)[:2] == [
        (0, "user_id", "42"),
        (1, "email", "ann@example.com"),
    ]


def test_group_traits_are_not_user_identifiers(tmp_path: Path) -> None:
    parsed = parse(
        make_workspace(tmp_path),
        {**GOOD, "type": "group", "groupId": "g1", "traits": {"email": "billing@acme.example"}},
    )
    assert set_texts(parsed) == [[["user_id", "u1"]]]


def test_typed_columns_hold_the_referenced_properties_and_traits(tmp_path: Path) -> None:
    workspace = make_workspace(
        tmp_path, COUNTERS + "  custom: [plan, address.city]\n".replace("  custom", "  custom", 1)
    )
    parsed = parse(
        workspace,
        {**GOOD, "properties": {"revenue": "12.50"}},
        {**GOOD, "type": "identify", "traits": {"plan": 3, "address": {"city": "Köln"}}},
    )
    rows = parsed.events.to_pylist()
    number = next(k for k in rows[0] if k.startswith("p_revenue_num"))
    assert rows[0][number] == 12.5
    city = next(k for k in rows[1] if k.startswith("t_address_city"))
    plan = next(k for k in rows[1] if k.startswith("t_plan"))
    assert (rows[1][city], rows[1][plan]) == ("Köln", "3")


# ------------------------------------------------------------------------------------------ landing


def _events(pipeline: ComputePipeline) -> list[dict[str, Any]]:
    e = pipeline.engine.tables.events
    return pipeline.read(e.select().order_by(e.c.timestamp, e.c.message_id)).to_pylist()


def _write_history(events: Path, layout: str, lines: list[str]) -> None:
    """Four parts of a history, as undated JSONL, gzip in Segment's dated archive folders, or Parquet."""
    for part in range(4):
        chunk = lines[part::4] + (["not json"] if part == 0 else [])
        if layout == "undated":
            (events / f"part-{part:04d}.jsonl").write_text("\n".join(chunk) + "\n")
        elif layout == "archive":
            folder = events / "src_1" / f"2026-11-0{part + 1}"
            folder.mkdir(parents=True)
            (folder / f"17620000{part}.abc.gz").write_bytes(gzip.compress(("\n".join(chunk) + "\n").encode()))
        else:
            rows = [json.loads(line) for line in chunk if line != "not json"]
            if part == 0:
                rows.append({"type": "track", "messageId": "bad", "event": "X", "timestamp": "2024-01-01"})
            pq.write_table(pa.Table.from_pylist(rows), events / f"part-{part:04d}.parquet")


@pytest.mark.parametrize("layout", ["undated", "archive", "parquet"])
def test_three_years_of_history_land_in_one_run(
    tmp_path: Path, compute_engine: ComputeEngine, layout: str
) -> None:
    workspace = make_workspace(tmp_path, COUNTERS)
    start = datetime(2023, 11, 1, tzinfo=UTC)
    lines = [message(i, start + timedelta(days=i), f"u{i % 3}", revenue=1) for i in range(1100)]
    _write_history(tmp_path / "events", layout, lines)
    pipeline = ComputePipeline(workspace, compute_engine)
    first = pipeline.land()
    assert (first.events, first.quarantined, first.new_sources, first.batch) == (1100, 1, 4, 1)
    again = pipeline.land()
    assert again.unchanged and (again.events, again.quarantined, again.unchanged_sources) == (0, 0, 4)
    assert pipeline.quarantine().num_rows == 1
    pipeline.evaluate(at("2026-11-05T00:00"))
    orders = {p: r["orders"] for p, r in by_profile(pipeline, "computed_traits").items()}
    assert orders == {profile_id_for(("user_id", f"u{u}")): n for u, n in ((0, 367), (1, 367), (2, 366))}
    timestamps = [e["timestamp"] for e in pipeline.read(compute_engine.tables.events.select()).to_pylist()]
    if compute_engine.is_duckdb:
        assert timestamps == sorted(timestamps)  # stored in time order after a history load


def test_dated_folders_gzip_and_parquet(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    workspace = make_workspace(tmp_path, COUNTERS)
    folder = tmp_path / "events" / "src_1" / "2025-03-01"
    folder.mkdir(parents=True)
    day = datetime(2025, 3, 1, tzinfo=UTC)
    with gzip.open(folder / "1740787200000.abc.gz", "wt") as handle:
        handle.write("\n".join(message(i, day, "u1", revenue=2) for i in range(3)) + "\n{bad\n")
    struct_rows = pa.table(
        {
            "type": ["track", "track"],
            "message_id": ["p1", "p2"],
            "user_id": ["u2", None],
            "event": ["Order Completed", "Order Completed"],
            "timestamp": pa.array([day, day], pa.timestamp("us", tz="UTC")),
            "properties": [{"revenue": 5.0}, {"revenue": 1.0}],
        }
    )
    json_rows = pa.table(
        {
            "type": ["track", "identify"],
            "messageId": ["p3", "p4"],
            "userId": ["u2", "u2"],
            "event": ["Order Completed", None],
            "timestamp": ["2025-03-02T10:00:00Z", "2025-03-02T09:00:00Z"],
            "properties": ['{"revenue": 12.5}', None],
            "traits": [None, '{"email": "U2@example.com"}'],
        }
    )
    pq.write_table(struct_rows, tmp_path / "events" / "structs.parquet")
    pq.write_table(json_rows, tmp_path / "events" / "strings.parquet")
    pipeline = ComputePipeline(workspace, compute_engine)
    summary = pipeline.land()
    assert (summary.events, summary.quarantined, summary.new_sources) == (6, 2, 3)
    assert {(q["source"], q["line"], q["reason"]) for q in pipeline.quarantine().to_pylist()} == {
        ("src_1/2025-03-01/1740787200000.abc.gz", 4, "not valid JSON"),
        ("structs.parquet", 2, "no userId or anonymousId"),
    }
    pipeline.evaluate(at("2025-04-01T00:00"))
    revenue = {p: r["revenue"] for p, r in by_profile(pipeline, "computed_traits").items()}
    assert revenue == {profile_id_for(("user_id", "u1")): 6, profile_id_for(("user_id", "u2")): 17.5}


def test_appended_and_changed_files(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    workspace = make_workspace(tmp_path, COUNTERS)
    path = tmp_path / "events" / "export.jsonl"
    day = datetime(2025, 6, 1, tzinfo=UTC)
    path.write_text(message(1, day, "u1") + "\nnot json\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    assert pipeline.land().events == 1
    with path.open("a") as handle:  # an export that grows: only its new lines are read
        handle.write(message(2, day, "u1") + "\n" + message(1, day, "u1") + "\nstill not json\n")
    appended = pipeline.land()
    assert (appended.appended_sources, appended.events, appended.duplicates, appended.quarantined) == (
        1,
        1,
        1,
        1,
    )
    assert [(q["line"], q["reason"]) for q in pipeline.quarantine().to_pylist()] == [
        (2, "not valid JSON"),
        (5, "not valid JSON"),
    ]
    pipeline.evaluate(at("2025-07-01T00:00"))
    path.write_text(message(1, day, "u1") + "\n" + message(3, day, "u2") + "\n")  # rewritten in place
    changed = pipeline.land()
    assert (changed.changed_sources, changed.events, changed.quarantined) == (1, 2, 0)
    assert [e["message_id"] for e in _events(pipeline)] == ["m1", "m3"]
    assert pipeline.quarantine().num_rows == 0
    summary = pipeline.evaluate(at("2025-07-01T00:00"))
    assert summary.identity.mode == "full"  # landed events were replaced: merges cannot be undone
    orders = {p: r["orders"] for p, r in by_profile(pipeline, "computed_traits").items()}
    assert orders == {profile_id_for(("user_id", "u1")): 1, profile_id_for(("user_id", "u2")): 1}


def test_many_small_files_in_one_parse_each_get_their_manifest_row(
    tmp_path: Path, compute_engine: ComputeEngine
) -> None:
    """An archive of hourly files: many files share one parse; each keeps its own counts, appends add to them."""
    workspace = make_workspace(tmp_path, COUNTERS)
    day = datetime(2025, 6, 1, tzinfo=UTC)
    for hour in range(40):
        lines = [message(hour * 10 + k, day + timedelta(hours=hour), "u1") for k in range(hour % 3 + 1)]
        folder = tmp_path / "events" / "src" / f"2025-06-{1 + hour // 24:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{hour:02d}.jsonl").write_text("\n".join(lines + ["bad"] * (hour % 2)) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    first = pipeline.land()
    assert (first.new_sources, first.events, first.quarantined) == (40, 79, 20)
    with (tmp_path / "events" / "src" / "2025-06-01" / "05.jsonl").open("a") as handle:
        handle.write(message(999, day, "u1") + "\nbad\n")
    assert pipeline.land().appended_sources == 1
    manifest = {r["source"]: r for r in pipeline.read(compute_engine.tables.landings.select()).to_pylist()}
    assert len(manifest) == 40
    for hour in range(40):
        row = manifest[f"src/2025-06-{1 + hour // 24:02d}/{hour:02d}.jsonl"]
        extra = hour == 5
        assert (row["events"], row["quarantined"]) == (hour % 3 + 1 + extra, hour % 2 + extra), hour


def test_an_unchanged_file_with_a_new_mtime_is_not_landed_again(
    tmp_path: Path, compute_engine: ComputeEngine
) -> None:
    workspace = make_workspace(tmp_path)
    path = tmp_path / "events" / "a.jsonl"
    path.write_text(message(1, datetime(2025, 1, 1, tzinfo=UTC), "u1") + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    os.utime(path, (1, 1))
    assert pipeline.land().unchanged


def test_late_events_are_folded_into_the_next_incremental_run(
    tmp_path: Path, compute_engine: ComputeEngine
) -> None:
    workspace = make_workspace(tmp_path, COUNTERS)
    events = tmp_path / "events"
    (events / "a.jsonl").write_text(message(1, datetime(2026, 10, 1, tzinfo=UTC), "u1", revenue=10) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    pipeline.evaluate(at("2026-10-20T00:00"))
    # A file arriving later holds an event from before the last evaluation.
    (events / "b.jsonl").write_text(message(2, datetime(2026, 9, 1, tzinfo=UTC), "u1", revenue=5) + "\n")
    pipeline.land()
    summary = pipeline.evaluate(at("2026-10-21T00:00"))
    assert summary.computed.mode == "incremental"
    assert by_profile(pipeline, "computed_traits")[profile_id_for(("user_id", "u1"))]["revenue"] == 15


def test_a_new_reference_is_filled_from_the_kept_json(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    workspace = make_workspace(tmp_path)
    (tmp_path / "events" / "a.jsonl").write_text(
        message(1, datetime(2026, 10, 1, tzinfo=UTC), "u1", revenue=10, category="shoes") + "\n"
    )
    ComputePipeline(workspace, compute_engine).land()
    (tmp_path / "events" / "a.jsonl").unlink()  # the source is gone: the new column must come from storage
    richer = make_workspace(
        tmp_path,
        COUNTERS
        + "    - {key: shoes, type: counter, event: Order Completed, where: [{property: category, op: '=', value: shoes}]}\n",
    )
    pipeline = ComputePipeline(richer, compute_engine)
    pipeline.land()
    pipeline.evaluate(at("2026-10-20T00:00"))
    row = by_profile(pipeline, "computed_traits")[profile_id_for(("user_id", "u1"))]
    assert (row["revenue"], row["shoes"]) == (10, 1)


def test_large_parquet_files_are_read_in_slices(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "PARQUET_ROWS", 2)
    rows = [json.loads(message(i, datetime(2025, 1, 1, tzinfo=UTC), f"u{i}", revenue=i)) for i in range(5)]
    rows[3]["userId"] = None
    workspace = make_workspace(tmp_path)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "events" / "big.parquet")
    pipeline = ComputePipeline(workspace, compute_engine)
    summary = pipeline.land()
    assert (summary.events, summary.quarantined) == (4, 1)
    assert [(q["line"], q["reason"]) for q in pipeline.quarantine().to_pylist()] == [
        (4, "no userId or anonymousId")
    ]
    assert [e["line"] for e in _events(pipeline)] == [1, 2, 3, 5]


def test_a_compute_schema_of_the_day_partitioned_version_is_refused_clearly(tmp_path: Path) -> None:
    engine = ComputeEngine(url=f"duckdb:///{tmp_path / 'compute.duckdb'}", schema="legacy")
    with engine.engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA legacy")
        conn.exec_driver_sql("CREATE TABLE legacy.events (message_id TEXT, day DATE)")
    with pytest.raises(LegacySchemaError, match="earlier version that landed events by day"):
        ComputePipeline(make_workspace(tmp_path), engine).land()
    engine.dispose()


@pytest.mark.parametrize(
    ("kind", "written"),
    [
        ("email", "\u00a0ÄNN.Ölz@Example.COM\u2003"),
        ("email", "İSTANBUL@x.com"),
        ("email", "ΟΔΟΣ@x.gr"),  # Python writes the final sigma as ς
        ("email", " \tAnn.Lee+Tag@Example.COM "),  # ASCII: lower-cased in SQL, the same as Python does
        ("phone", " (212) 555-0101 "),
        ("phone", "+49 (0)30 1234567"),
        ("phone", "n/a"),
        ("user_id", "\u3000u-1\t"),
        ("user_id", 1.5),
    ],
)
def test_landed_identifiers_have_the_canonical_form(tmp_path: Path, kind: str, written: object) -> None:
    workspace = make_workspace(tmp_path)
    msg: dict[str, Any] = {**GOOD, "type": "identify", "traits": {}}
    if kind == "user_id":
        msg["userId"] = written
    else:
        msg["traits"][kind] = written
    [pairs] = set_texts(parse(workspace, msg))
    ids = dict(map(tuple, pairs))
    assert ids[kind] == canonical_identifier(kind, written, workspace.normalisation.default_region)


def test_large_messages_are_parsed_a_bounded_number_of_bytes_at_a_time(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big messages fill a parse by size before they fill it by lines: the same events, in several parses."""
    monkeypatch.setattr(landing, "PARSE_BYTES", 3_000)
    monkeypatch.setattr(sources, "CHUNK_BYTES", 1_500)
    workspace = make_workspace(tmp_path, COUNTERS)
    day = datetime(2025, 5, 1, tzinfo=UTC)
    lines = [
        message(i, day + timedelta(minutes=i), f"u{i % 3}", revenue=i, note="x" * 400) for i in range(30)
    ]
    (tmp_path / "events" / "a.jsonl").write_text("\n".join(lines) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    parses = []
    real_finish = landing._Landing._finish
    monkeypatch.setattr(
        landing._Landing, "_finish", lambda self, *a: (parses.append(1), real_finish(self, *a))
    )
    summary = pipeline.land()
    assert (summary.events, summary.quarantined, summary.duplicates) == (30, 0, 0)
    assert len(parses) >= 5
    assert [e["message_id"] for e in _events(pipeline)] == [f"m{i}" for i in range(30)]


def test_an_interrupted_landing_is_finished_by_the_next_without_counting_twice(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(landing, "PARSE_ROWS", 2)  # a transaction every two lines
    # Not taken as an unreadable file (left for the next run) but as an error that stops the landing.
    monkeypatch.setattr(sources, "READ_ERRORS", ())
    workspace = make_workspace(tmp_path)
    day = datetime(2025, 5, 1, tzinfo=UTC)
    (tmp_path / "events" / "a.jsonl").write_text(
        "\n".join([message(1, day, "u1"), "not json", message(2, day, "u2"), message(3, day, "u3")]) + "\n"
    )
    broken = tmp_path / "events" / "b.jsonl.gz"
    whole = gzip.compress(("\n".join(message(i, day, "u4") for i in range(4, 40)) + "\n").encode())
    broken.write_bytes(whole[: len(whole) // 2])  # reading it fails half way
    pipeline = ComputePipeline(workspace, compute_engine)
    with pytest.raises(EOFError):
        pipeline.land()
    assert pipeline.read(compute_engine.tables.events.select()).num_rows > 0  # part of it was committed
    broken.write_bytes(whole)
    summary = pipeline.land()
    assert (summary.events, summary.quarantined, summary.new_sources) == (39, 1, 2)
    assert pipeline.quarantine().num_rows == 1
    assert sorted(e["message_id"] for e in _events(pipeline)) == sorted(f"m{i}" for i in range(1, 40))


class _Crash(BaseException):
    """A landing killed from outside (not an error the landing handles)."""


def test_duckdb_lands_within_the_landing_memory_and_gets_its_limit_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing parses needs little of DuckDB's memory: it is held to LANDING_MEMORY, and given back after a
    landing, also one killed half way."""
    monkeypatch.setattr(landing, "PARSE_ROWS", 3)  # a parse per file
    workspace = make_workspace(tmp_path)
    day = datetime(2025, 5, 1, tzinfo=UTC)
    for k in range(3):
        lines = [message(3 * k + i, day + timedelta(minutes=3 * k + i), "u1") for i in range(3)]
        (tmp_path / "events" / f"{k}.jsonl").write_text("\n".join(lines) + "\n")
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'm.duckdb'}", "c", duckdb_settings={"memory_limit": "2GB"})
    pipeline = ComputePipeline(workspace, engine)
    with engine.begin() as conn:
        configured = duckdb_memory_limit(conn)
    seen: list[int | None] = []
    crash = [True]
    real_finish = landing._Landing._finish

    def watched(self: landing._Landing, pending: Any, last: bool) -> None:
        if crash[0] and len(seen) == 2:
            raise _Crash
        with engine.begin() as conn:
            seen.append(duckdb_memory_limit(conn))
        real_finish(self, pending, last)

    monkeypatch.setattr(landing._Landing, "_finish", watched)
    with pytest.raises(_Crash):
        pipeline.land()
    with engine.begin() as conn:
        assert duckdb_memory_limit(conn) == configured
    seen.clear()
    crash[0] = False
    assert pipeline.land().events_total == 9
    with engine.begin() as conn:
        assert duckdb_memory_limit(conn) == configured
    pipeline.close()
    assert seen and set(seen) == {landing.LANDING_MEMORY}


def test_events_go_in_by_whole_row_groups_and_a_file_is_recorded_with_its_last_event(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB appends whole row groups and holds the rest back: a held-back file is not in the manifest yet,
    a copy of a held-back message is still a duplicate, and a landing killed half way loses nothing."""
    monkeypatch.setattr(landing, "PARSE_ROWS", 3)  # a parse per file
    monkeypatch.setattr(landing, "ROW_GROUP", 16)
    workspace = make_workspace(tmp_path)
    day = datetime(2025, 5, 1, tzinfo=UTC)
    files = {
        "a.jsonl": [message(i, day + timedelta(minutes=i), "u1") for i in range(1, 6)],
        "b.jsonl": [
            message(5, day, "u9"),
            *(message(i, day + timedelta(minutes=i), "u2") for i in range(6, 9)),
        ],
        "c.jsonl": ["not json", *(message(i, day + timedelta(minutes=i), "u3") for i in range(9, 16))],
    }
    for name, lines in files.items():
        (tmp_path / "events" / name).write_text("\n".join(lines) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    tables = compute_engine.tables
    commits: list[tuple[list[str], dict[str, int]]] = []
    real_finish = landing._Landing._finish

    def watched(self: landing._Landing, pending: Any, last: bool) -> None:
        real_finish(self, pending, last)
        stored = pipeline.read(sa.select(tables.events.c.message_id, tables.events.c.source)).to_pylist()
        recorded = pipeline.read(sa.select(tables.landings.c.source, tables.landings.c.events)).to_pylist()
        commits.append(
            (sorted(r["message_id"] for r in stored), {r["source"]: r["events"] for r in recorded})
        )
        if not last and compute_engine.is_duckdb:
            assert len(stored) % 16 == 0
        for source in commits[-1][1]:  # a recorded file has all its events stored (b's copy of m5 is not)
            assert (
                sum(r["source"] == source for r in stored)
                == {"a.jsonl": 5, "b.jsonl": 3, "c.jsonl": 7}[source]
            )

    monkeypatch.setattr(landing._Landing, "_finish", watched)
    summary = pipeline.land()
    assert (summary.events, summary.duplicates, summary.quarantined) == (15, 1, 1)
    assert sorted(e["message_id"] for e in _events(pipeline)) == sorted(f"m{i}" for i in range(1, 16))
    assert commits[-1][1] == {"a.jsonl": 5, "b.jsonl": 4, "c.jsonl": 7}
    if compute_engine.is_duckdb:
        assert any(len(c[0]) < 15 and "a.jsonl" not in c[1] for c in commits[:-1])  # a was held back once

    # Killed after its second commit: the next landing removes what files without a manifest row gave.
    for k, first in enumerate(range(16, 30, 4)):  # four files, a parse each: the third commit never happens
        later = (
            message(i, day + timedelta(hours=1, minutes=i), "u4") for i in range(first, min(first + 4, 30))
        )
        (tmp_path / "events" / f"d{k}.jsonl").write_text("\n".join(later) + "\n")
    done: list[int] = []

    def killed(self: landing._Landing, pending: Any, last: bool) -> None:
        if len(done) == 2:
            raise _Crash
        real_finish(self, pending, last)
        done.append(1)

    monkeypatch.setattr(landing._Landing, "_finish", killed)
    with pytest.raises(_Crash):
        pipeline.land()
    monkeypatch.setattr(landing._Landing, "_finish", real_finish)
    kept = {r["source"] for r in pipeline.read(sa.select(tables.landings.c.source)).to_pylist()}
    recorded = kept - set(files)
    assert len(recorded) < 4 and len(_events(pipeline)) > 15 + 4 * len(recorded)  # rows of unrecorded files
    again = pipeline.land()
    assert again.new_sources == 4 - len(recorded)
    assert sorted(e["message_id"] for e in _events(pipeline)) == sorted(f"m{i}" for i in range(1, 30))


def test_copies_from_other_parses_and_landings_are_removed_and_the_first_copy_wins(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy of a message stored by an earlier parse, or an earlier landing, is left out (the first copy wins:
    earlier landing, then file and line), also when the landing that stored it was killed before it finished."""
    monkeypatch.setattr(landing, "PARSE_ROWS", 2)  # a parse per two lines
    monkeypatch.setattr(landing, "ROW_GROUP", 1)  # nothing held back: each parse is stored as it comes
    workspace = make_workspace(tmp_path)
    day = datetime(2025, 5, 1, tzinfo=UTC)
    events = tmp_path / "events"

    def write(name: str, *lines: str) -> None:
        (events / name).write_text("\n".join(lines) + "\n")

    def origins(pipeline: ComputePipeline) -> dict[str, tuple[str, str]]:
        stored = _events(pipeline)
        assert len(stored) == len({e["message_id"] for e in stored})
        return {e["message_id"]: (e["source"], e["user_id"]) for e in stored}

    write("a.jsonl", *(message(i, day + timedelta(minutes=i), "u1") for i in range(1, 5)))
    write(
        "b.jsonl", message(2, day, "u9"), message(5, day + timedelta(minutes=5), "u2"), message(3, day, "u8")
    )
    pipeline = ComputePipeline(workspace, compute_engine)
    first = pipeline.land()
    assert (first.events, first.duplicates) == (5, 2)
    assert origins(pipeline) == {
        **{f"m{i}": ("a.jsonl", "u1") for i in range(1, 5)},
        "m5": ("b.jsonl", "u2"),
    }

    write("c.jsonl", message(1, day, "u7"), message(6, day + timedelta(minutes=6), "u3"))
    second = pipeline.land()
    assert (second.events, second.duplicates) == (1, 1)
    assert origins(pipeline)["m1"] == ("a.jsonl", "u1")

    # DuckDB removes copies at the end of a landing: one killed before that, the next landing removes them.
    write("d.jsonl", message(4, day, "u6"), message(7, day + timedelta(minutes=7), "u4"))
    if compute_engine.is_duckdb:
        real_remove = landing._remove_repeats
        monkeypatch.setattr(landing, "_remove_repeats", lambda *args: (_ for _ in ()).throw(_Crash()))
        with pytest.raises(_Crash):
            pipeline.land()
        monkeypatch.setattr(landing, "_remove_repeats", real_remove)
        assert len(_events(pipeline)) == 8  # m4's copy is stored for now
    again = pipeline.land()
    assert again.new_sources == (0 if compute_engine.is_duckdb else 1)
    assert origins(pipeline) == {
        **{f"m{i}": ("a.jsonl", "u1") for i in range(1, 5)},
        "m5": ("b.jsonl", "u2"),
        "m6": ("c.jsonl", "u3"),
        "m7": ("d.jsonl", "u4"),
    }


def test_odd_files_keys_and_names_land_and_evaluate(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    """A BOM, a NUL byte, keys "" and "\\", `%` in names and SQL: nothing lost, nothing breaks, both engines."""
    extra = """
traits:
  computed:
    - {key: discounted, type: counter, event: "Fifty 50% Off"}
  sql:
    - key: pct
      identifier: user_id
      query: "SELECT user_id, CAST(max(pct) AS INTEGER) || '%' AS pct FROM fifty_50_off WHERE event_text LIKE '%50\\\\%%' ESCAPE '\\\\' GROUP BY 1"
"""
    workspace = make_workspace(tmp_path, extra)
    odd = {**GOOD, "event": "Fifty 50% Off", "properties": {"": 1, "\\": 2, "pct%": 3, "pct": 50}}
    lines = [json.dumps({**odd, "messageId": "m1"}), "bad \x00 line", json.dumps({**odd, "messageId": "m2"})]
    (tmp_path / "events" / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    summary = pipeline.land()
    assert (summary.events, summary.quarantined, summary.reasons) == (2, 1, {"not valid JSON": 1})
    assert pipeline.quarantine().column("line").to_pylist() == [2]
    pipeline.evaluate(at("2026-10-05T00:00"))
    row = by_profile(pipeline, "computed_traits")[profile_id_for(("user_id", "u1"))]
    assert row["discounted"] == 2
    assert by_profile(pipeline, "sqlt_pct")[profile_id_for(("user_id", "u1"))]["pct"] == "50%"


@pytest.mark.parametrize("shuffled", [False, True])
def test_repeated_message_ids_in_one_file_land_once_in_time_order(
    tmp_path: Path, compute_engine: ComputeEngine, shuffled: bool
) -> None:
    """The commit skips ranking and sorting only when a parse needs neither: with a repeated messageId the
    first line is kept, and lines out of time order are stored sorted (DuckDB keeps events in time order)."""
    workspace = make_workspace(tmp_path, COUNTERS)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    lines = [message(i, start + timedelta(hours=i), "u1", revenue=i) for i in range(50)]
    repeated = json.loads(lines[10])
    repeated["properties"] = {"revenue": 1000}
    lines.append(json.dumps(repeated))  # same messageId as m10: the copy on the later line is dropped
    if shuffled:
        lines = lines[25:] + lines[:25]  # now the copy comes first in the file, and m10 itself is dropped
    (tmp_path / "events" / "part-0000.jsonl").write_text("\n".join(lines) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    landed = pipeline.land()
    assert (landed.events, landed.duplicates) == (50, 1)
    stored = _events(pipeline)
    assert len({e["message_id"] for e in stored}) == 50
    kept = next(e for e in stored if e["message_id"] == "m10")["properties"]
    assert (json.loads(kept) if isinstance(kept, str) else kept) == {"revenue": 1000 if shuffled else 10}
    if compute_engine.is_duckdb:
        raw_order = pipeline.read(compute_engine.tables.events.select()).to_pylist()
        assert [e["timestamp"] for e in raw_order] == sorted(e["timestamp"] for e in raw_order)


def test_line_endings_blank_lines_and_broken_bytes_are_read_as_written(
    tmp_path: Path, compute_engine: ComputeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRLF and LF, blank and whitespace-only lines (Unicode spaces too), a NUL, bytes that are not UTF-8 and a
    last line without newline: every line keeps its number, quarantined text has no line ending, and a message
    without messageId gets the same generated id whatever its line ending, also across small read blocks."""
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64)  # lines cross block boundaries
    workspace = make_workspace(tmp_path, COUNTERS)
    no_id = json.dumps({**GOOD, "userId": "u9"}).encode()
    day = datetime(2026, 10, 1, tzinfo=UTC)
    rows = [
        message(1, day, "u1").encode() + b"\r\n",
        b"\r\n",
        b"  \t \n",
        "\u3000\u00a0\n".encode(),
        b"not json\r\n",
        b'{"type": "tr\x00ack"}\n',
        b'{"type": "track", "event": "\xff"}\n',
        no_id + b"\r\n",
        message(2, day, "u2").encode(),
    ]
    (tmp_path / "events" / "a.jsonl").write_bytes(b"".join(rows))
    (tmp_path / "events" / "b.jsonl").write_bytes(no_id + b"\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    summary = pipeline.land()
    assert (summary.events, summary.quarantined, summary.duplicates) == (3, 3, 1)
    quarantined = sorted(pipeline.quarantine().select(["line", "raw"]).to_pylist(), key=lambda r: r["line"])
    assert [(r["line"], r["raw"]) for r in quarantined] == [
        (5, "not json"),
        (6, '{"type": "tr\ufffdack"}'),
        (7, '{"type": "track", "event": "\ufffd"}'),
    ]
    stored = {e["message_id"]: e for e in _events(pipeline)}
    assert {"m1", "m2"} < set(stored) and stored["m2"]["line"] == 9
    generated = [e for key, e in stored.items() if key.startswith("gen-")]
    assert [(e["source"], e["line"]) for e in generated] == [("a.jsonl", 8)]  # b.jsonl's copy is a duplicate
    manifest = {r["source"]: r for r in pipeline.read(compute_engine.tables.landings.select()).to_pylist()}
    assert manifest["a.jsonl"]["lines"] == 9 and not manifest["a.jsonl"]["complete"]


def test_message_hashes_from_another_duckdb_hash_are_computed_again(tmp_path: Path) -> None:
    """DuckDB does not promise its `hash` across versions: when the stored probe differs, every stored message
    hash is computed again on opening, so duplicates of old messages are still caught."""
    workspace = make_workspace(tmp_path, COUNTERS)
    day = datetime(2026, 10, 1, tzinfo=UTC)
    (tmp_path / "events" / "a.jsonl").write_text("\n".join(message(i, day, "u1") for i in range(5)) + "\n")
    engine = ComputeEngine(f"duckdb:///{tmp_path / 'compute.duckdb'}", "bench")
    pipeline = ComputePipeline(workspace, engine)
    pipeline.land()
    hashes = {e["message_id"]: e["message_hash"] for e in _events(pipeline)}
    tables = engine.tables
    with engine.begin() as conn:  # as an earlier DuckDB with another hash function would have left them
        conn.execute(sa.update(tables.events).values(message_hash=tables.events.c.message_hash + 1))
        conn.execute(
            sa.update(tables.state).where(tables.state.c.key == MESSAGE_HASH_PROBE).values(value="0")
        )
    pipeline.close()

    pipeline = ComputePipeline(workspace, ComputeEngine(engine.url, engine.schema))
    assert {e["message_id"]: e["message_hash"] for e in _events(pipeline)} == hashes
    (tmp_path / "events" / "b.jsonl").write_text(message(2, day, "u1") + "\n")
    assert (pipeline.land().duplicates, len(_events(pipeline))) == (1, 5)
    pipeline.close()


def test_events_of_an_earlier_version_get_their_message_hash_and_still_catch_duplicates(
    tmp_path: Path, compute_engine: ComputeEngine
) -> None:
    """A compute file whose events have no `message_hash` (before the duplicate check used it) is upgraded when
    opened: the hashes are filled as landing computes them, so a copy of an old message is still a duplicate."""
    workspace = make_workspace(tmp_path, COUNTERS)
    day = datetime(2026, 10, 1, tzinfo=UTC)
    (tmp_path / "events" / "a.jsonl").write_text("\n".join(message(i, day, "u1") for i in range(5)) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    hashes = {e["message_id"]: e["message_hash"] for e in _events(pipeline)}
    assert len(set(hashes.values())) == 5 and None not in hashes.values()
    events = compute_engine.tables.events
    with compute_engine.begin() as conn:
        conn.execute(
            sa.text(f"ALTER TABLE {compute_engine.name(conn, events.name)} DROP COLUMN message_hash")
        )
    pipeline.close()

    reopened = ComputeEngine(compute_engine.url, compute_engine.schema)
    pipeline = ComputePipeline(workspace, reopened)
    stored = {e["message_id"]: e["message_hash"] for e in _events(pipeline)}
    if reopened.is_duckdb:
        assert stored == hashes
    else:  # PostgreSQL finds duplicates by message_id in its index: the old rows' hashes stay empty
        assert set(stored) == set(hashes) and set(stored.values()) == {None}
    (tmp_path / "events" / "b.jsonl").write_text(message(2, day, "u1") + "\n" + message(7, day, "u1") + "\n")
    summary = pipeline.land()
    assert (summary.events, summary.duplicates) == (1, 1)
    assert sorted(e["message_id"] for e in _events(pipeline)) == ["m0", "m1", "m2", "m3", "m4", "m7"]
    pipeline.close()


def test_events_of_an_earlier_version_give_their_set_texts_to_identifier_sets(
    tmp_path: Path, compute_engine: ComputeEngine
) -> None:
    """Earlier versions kept each event's identifier set text on the event: opening such a file moves the
    texts to `identifier_sets` (once per set) and drops the column."""
    workspace = make_workspace(tmp_path, COUNTERS)
    day = datetime(2026, 10, 1, tzinfo=UTC)
    lines = [message(i, day + timedelta(minutes=i), f"u{i % 3}") for i in range(9)]
    (tmp_path / "events" / "a.jsonl").write_text("\n".join(lines) + "\n")
    pipeline = ComputePipeline(workspace, compute_engine)
    pipeline.land()
    tables = compute_engine.tables
    texts = sorted(map(tuple, pipeline.read(sa.select(tables.identifier_sets)).to_pylist()), key=repr)
    assert len(texts) == 3
    with compute_engine.begin() as conn:  # the layout of earlier versions
        name = compute_engine.name(conn, tables.events.name)
        conn.execute(sa.text(f"ALTER TABLE {name} ADD COLUMN ids TEXT"))
        texts_table = compute_engine.name(conn, tables.identifier_sets.name)
        conn.execute(
            sa.text(
                f"UPDATE {name} SET ids = (SELECT t.ids FROM {texts_table} t WHERE t.set_hash = {name}.set_hash)"
            )
        )
        conn.execute(sa.delete(tables.identifier_sets))
    pipeline.close()

    reopened = ComputeEngine(compute_engine.url, compute_engine.schema)
    pipeline = ComputePipeline(workspace, reopened)
    assert (
        sorted(map(tuple, pipeline.read(sa.select(reopened.tables.identifier_sets)).to_pylist()), key=repr)
        == texts
    )
    with reopened.begin() as conn:
        assert "ids" not in table_columns(conn, reopened.schema, "events")
    pipeline.evaluate(at("2026-10-05T00:00"))
    assert by_profile(pipeline, "computed_traits")[profile_id_for(("user_id", "u1"))]["orders"] == 3
    pipeline.close()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("a.jsonl", b'{"a": 1}\n\n{"b": 2}\n'),
        ("b.jsonl", b'\xef\xbb\xbf{"a": 1}\n{"b": 2}'),  # a BOM, no newline at the end
        ("c.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 1000)),
        ("d.jsonl", b""),
    ],
)
def test_a_new_file_is_hashed_as_it_is_read(tmp_path: Path, name: str, content: bytes) -> None:
    """One pass over a new file gives both its lines and the digest a separate read gives."""
    path = tmp_path / name
    path.write_bytes(content)
    file = sources.SourceFile(path, name, path.stat().st_size)
    reader = sources.JsonlReader(file)
    lines = sum(chunk.num_rows for chunk in reader)
    assert lines == {"a.jsonl": 2, "b.jsonl": 2, "c.jsonl.gz": 1000, "d.jsonl": 0}[name]
    expected = sources.FileDigest(hashlib.sha256(content).hexdigest(), None, content[-1:] in (b"", b"\n"))
    assert reader.digest == expected == sources.file_digest(file, None)


def test_a_file_growing_while_it_is_read_is_landed_as_it_was_found(tmp_path: Path) -> None:
    """Bytes written after the file was listed are left to the next landing (as an append)."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n')
    file = sources.SourceFile(path, "a.jsonl", path.stat().st_size)
    with path.open("ab") as handle:
        handle.write(b'{"b": 2}\n')
    reader = sources.JsonlReader(file)
    assert [chunk.num_rows for chunk in reader] == [1]
    assert reader.digest is not None
    assert reader.digest.content_hash == hashlib.sha256(b'{"a": 1}\n').hexdigest()
    grown = sources.SourceFile(path, "a.jsonl", path.stat().st_size)
    assert sources.file_digest(file, None) == reader.digest  # a known file is hashed as listed, too
    assert sources.file_digest(grown, 9).prefix_hash == reader.digest.content_hash


def test_a_known_file_digest_gives_the_prefix_hash_wherever_the_prefix_ends(tmp_path: Path) -> None:
    """The prefix hash (how an append is recognised) is the hash of exactly those first bytes."""
    path = tmp_path / "a.jsonl"
    content = b'{"a": 1}\n{"b": 2}\n'
    path.write_bytes(content)
    file = sources.SourceFile(path, "a.jsonl", len(content))
    for prefix in (0, 1, 9, len(content) - 1, len(content)):
        digest = sources.file_digest(file, prefix)
        assert digest.prefix_hash == hashlib.sha256(content[:prefix]).hexdigest(), prefix
        assert digest.content_hash == hashlib.sha256(content).hexdigest() and digest.complete
