"""One member, one change: one identify and one `Audience Entered` per destination record, on every event
destination, however many emails, phones and anonymous ids the member has (issue: Segment's fan-out)."""

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from activation_pipeline.activation.model import Change, ChangeKind, ProfileView
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.destinations.registry import build_client, capabilities
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    braze_destination,
    connection,
    function_destination,
    ident,
    iterable_destination,
    webhook_destination,
)

FAST = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=2))
CONTEXT = BatchContext(connection_id="audience.vip.x", sync_id="sync_test")


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAZE_TEST_KEY", "braze-sandbox-key")
    monkeypatch.setenv("ITERABLE_TEST_KEY", "iterable-sandbox-key")


def member(n: int, *, user: bool = True) -> ProfileView:
    """A member with two emails, two phones and two anonymous ids (and a user id unless `user` is False)."""
    ids = [
        ident("anonymous_id", f"anon-{n}-a", 1), ident("anonymous_id", f"anon-{n}-b", 2),
        ident("email", f"m{n}.old@example.com", 3), ident("email", f"m{n}.new@example.com", 4),
        ident("phone", "+33100000001", 5), ident("phone", "+33100000002", 6),
    ]  # fmt: skip
    if user:
        ids.append(ident("user_id", f"u{n}", 7))
    return ProfileView(f"p{n}", tuple(ids))


def _send(destination: Any, kind: ChangeKind, profiles: list[ProfileView], **settings: Any) -> list[Any]:
    conn = connection(send_identify=True, send_track=True, **settings)
    planned = plan_changes(
        [Change(kind, p, AS_OF) for p in profiles],
        conn,
        kind="event",
        space="acme",
        separate_by=capabilities(destination).separate_records_by,
    )
    records = [r for p in planned for r in p.records]
    client = build_client(destination, FAST)
    try:
        results = client.send(records, CONTEXT).results
    finally:
        client.close()
    assert all(r.outcome is Outcome.ACKNOWLEDGED for r in results)
    return records


@pytest.mark.parametrize("kind", [ChangeKind.ENTERED, ChangeKind.EXITED])
@pytest.mark.parametrize("setup", ["default", "all"])
def test_webhook_gets_one_identify_and_one_track_per_member(kind: ChangeKind, setup: str) -> None:
    id_sync = [{"identifier": i, "as": i, "strategy": "all"} for i in ("email", "phone")]
    settings = {"setup": "customized", "id_sync": id_sync} if setup == "all" else {}
    with WebhookSandbox() as sandbox:
        _send(webhook_destination(sandbox.hook_url, batch=True), kind, [member(1), member(2)], **settings)
        messages = sandbox.messages()
    per_member = Counter((m["userId"], m["type"], m.get("event")) for m in messages)
    event = "Audience Entered" if kind is ChangeKind.ENTERED else "Audience Exited"
    assert per_member == {
        (u, t, e): 1 for u in ("u1", "u2") for t, e in (("identify", None), ("track", event))
    }
    for message in messages:
        ids = {(i["type"], i["id"]) for i in message["context"]["externalIds"]}
        assert {t for t, _ in ids} == {"email", "phone"} and len(ids) == 4


def test_braze_gets_one_attributes_object_and_one_event_per_external_id() -> None:
    with BrazeSandbox() as sandbox:
        _send(braze_destination(sandbox.url), ChangeKind.ENTERED, [member(1), member(2)])
        bodies = [r.json() for r in sandbox.successful("/users/track")]
    attributes = Counter(a["external_id"] for b in bodies for a in b.get("attributes", []))
    events = Counter((e["external_id"], e["name"]) for b in bodies for e in b.get("events", []))
    assert attributes == {"u1": 1, "u2": 1}
    assert events == {("u1", "Audience Entered"): 1, ("u2", "Audience Entered"): 1}
    # the most recently added email, every time
    assert sandbox.users["external_id:u1"]["email"] == "m1.new@example.com"


def test_iterable_one_per_user_and_one_per_email_without_a_user_id() -> None:
    with IterableSandbox() as sandbox:
        records = _send(
            iterable_destination(sandbox.url), ChangeKind.ENTERED, [member(1), member(2, user=False)]
        )
    by_profile = Counter((r.profile_id, r.payload["type"]) for r in records)
    # p1 has a user id: one record; p2 has none: Iterable keys it by email, and each email is a user there.
    assert by_profile == {
        ("p1", "identify"): 1,
        ("p1", "track"): 1,
        ("p2", "identify"): 2,
        ("p2", "track"): 2,
    }
    emails = sorted(
        r.payload["traits"]["email"]
        for r in records
        if r.profile_id == "p2" and r.payload["type"] == "identify"
    )
    assert emails == ["m2.new@example.com", "m2.old@example.com"]


def test_a_function_gets_the_whole_member_in_one_message(tmp_path: Path) -> None:
    handler = tmp_path / "fn.py"
    handler.write_text(
        "def on_identify(event, settings):\n    return 'ok'\ndef on_track(event, settings):\n    return 'ok'\n"
    )
    records = _send(function_destination(str(handler)), ChangeKind.ENTERED, [member(1)])
    assert Counter(r.payload["type"] for r in records) == {"identify": 1, "track": 1}


def test_newly_seen_identifiers_keep_the_message_id() -> None:
    """A retry planned after the member gained an email is the same message (same messageId)."""
    conn = connection(send_identify=True, send_track=True)
    before = plan_changes([Change(ChangeKind.ENTERED, member(1), AS_OF)], conn, kind="event", space="acme")
    grown = member(1)
    grown = ProfileView(grown.profile_id, (*grown.identifiers, ident("email", "m1.third@example.com", 9)))
    after = plan_changes([Change(ChangeKind.ENTERED, grown, AS_OF)], conn, kind="event", space="acme")
    assert [r.record_id for r in before[0].records] == [r.record_id for r in after[0].records]
