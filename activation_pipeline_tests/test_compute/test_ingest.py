"""Parsing, validation and quarantine of Segment messages, and idempotent landing of a day."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.ingest import IdentifierExtractor, MessageRejectedError, validate
from activation_pipeline.compute.pipeline import ComputePipeline

from .conftest import Messages, make_workspace

GOOD = {"type": "track", "event": "Order Completed", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ([1, 2], "not a JSON object"),
        ({**GOOD, "type": "trak"}, "unknown type 'trak'"),
        ({k: v for k, v in GOOD.items() if k != "type"}, "no type"),
        ({k: v for k, v in GOOD.items() if k != "userId"}, "no userId or anonymousId"),
        ({k: v for k, v in GOOD.items() if k != "event"}, "track without event"),
        ({**GOOD, "timestamp": "10/01/2026 10:00:00"}, "timestamp not ISO-8601"),
        ({**GOOD, "timestamp": "yesterday"}, "timestamp not ISO-8601"),
        ({k: v for k, v in GOOD.items() if k != "timestamp"}, "no timestamp"),
        ({**GOOD, "properties": "revenue=5"}, "properties is not an object"),
        ({"type": "group", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}, "group without groupId"),
        ({"type": "alias", "userId": "u1", "timestamp": "2026-10-01T10:00:00Z"}, "alias without previousId"),
    ],
)
def test_unusable_messages_are_rejected_with_reason(tmp_path: Path, message: object, reason: str) -> None:
    extractor = IdentifierExtractor(make_workspace(tmp_path))
    with pytest.raises(MessageRejectedError, match=f"^{reason}$"):
        validate(message, extractor)


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
    row = validate(
        {
            "type": "identify",
            "userId": 42,
            "anonymousId": " a1 ",
            "timestamp": "2026-10-01T12:00:00+02:00",
            "traits": {"email": "  Ann@Example.COM ", "phone": "(212) 555-0101", "crm": {"id": "CRM-1"}},
            "context": {"device": {"type": "ios", "advertisingId": "IDFA-1"}},
        },
        IdentifierExtractor(workspace),
    )
    assert json.loads(row["ids"]) == [
        ["user_id", "42"],
        ["email", "ann@example.com"],
        ["phone", "+12125550101"],
        ["anonymous_id", "a1"],
        ["ios.idfa", "IDFA-1"],
        ["crm_id", "CRM-1"],
    ]
    assert row["timestamp"].isoformat() == "2026-10-01T10:00:00"
    assert json.loads(row["traits"])["email"] == "  Ann@Example.COM "  # raw value kept for activation


def test_group_traits_are_not_user_identifiers(tmp_path: Path) -> None:
    extractor = IdentifierExtractor(make_workspace(tmp_path))
    row = validate(
        {
            "type": "group",
            "userId": "u1",
            "groupId": "g1",
            "timestamp": "2026-10-01T10:00:00Z",
            "traits": {"email": "billing@acme.example"},
        },
        extractor,
    )
    assert json.loads(row["ids"]) == [["user_id", "u1"]]


def test_bad_lines_are_quarantined_and_the_rest_lands(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    workspace = make_workspace(tmp_path)
    messages = Messages(tmp_path)
    messages.track("2026-10-01T10:00", "Order Completed", user="u1", revenue=10)
    messages.raw("2026-10-01", '{"type": "track", "event": "X", "userId": "u1", "timest')
    messages.raw("2026-10-01", json.dumps({**GOOD, "type": "pageview"}))
    messages.raw("2026-10-01", json.dumps({**GOOD, "messageId": "m00001"}))  # duplicate messageId
    messages.track("2026-10-01T11:00", "Order Completed", anon="a1", revenue=20)
    messages.write()
    pipeline = ComputePipeline(workspace, compute_engine)
    [summary] = pipeline.land_all()
    assert (summary.events, summary.quarantined, summary.duplicates) == (2, 2, 1)
    assert summary.reasons == {"not valid JSON": 1, "unknown type 'pageview'": 1}
    quarantine = pipeline.quarantine().to_pylist()
    assert [(q["source"], q["line"], q["reason"]) for q in quarantine] == [
        ("2026-10-01.jsonl", 2, "not valid JSON"),
        ("2026-10-01.jsonl", 3, "unknown type 'pageview'"),
    ]
    assert quarantine[0]["raw"].startswith('{"type": "track"')


def test_landing_a_day_again_replaces_it(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    workspace = make_workspace(tmp_path)
    messages = Messages(tmp_path)
    messages.track("2026-10-01T10:00", "A", user="u1")
    messages.track("2026-10-01T11:00", "B", user="u1")
    messages.raw("2026-10-01", "not json")
    messages.write()
    pipeline = ComputePipeline(workspace, compute_engine)
    first = pipeline.land_day(date(2026, 10, 1))
    again = pipeline.land_day(date(2026, 10, 1))
    assert again.unchanged and again.batch == first.batch
    (tmp_path / "events" / "2026-10-01.jsonl").write_text(json.dumps({**GOOD, "messageId": "x"}) + "\n")
    replaced = pipeline.land_day(date(2026, 10, 1))
    assert not replaced.unchanged and replaced.batch == first.batch + 1
    events = pipeline.read(compute_engine.tables.events.select()).to_pylist()
    assert [e["message_id"] for e in events] == ["x"]
    assert pipeline.quarantine().num_rows == 0


def test_parquet_files_are_read(tmp_path: Path, compute_engine: ComputeEngine) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    workspace = make_workspace(tmp_path)
    table = pa.table(
        {
            "type": ["track", "identify", "track"],
            "messageId": ["p1", "p2", "p3"],
            "userId": ["u1", "u1", None],
            "event": ["Order Completed", None, "Order Completed"],
            "timestamp": ["2026-10-01T10:00:00Z", "2026-10-01T09:00:00Z", "2026-10-01T11:00:00Z"],
            "properties": ['{"revenue": 12.5}', None, "{}"],
            "traits": [None, '{"email": "u1@example.com"}', None],
        }
    )
    pq.write_table(table, tmp_path / "events" / "2026-10-01.parquet")
    pipeline = ComputePipeline(workspace, compute_engine)
    [summary] = pipeline.land_all()
    assert (summary.events, summary.quarantined) == (2, 1)
    assert pipeline.quarantine().to_pylist()[0]["reason"] == "no userId or anonymousId"
