"""Payload shapes, checked on what a fake webhook receives over real HTTP: audiences, computed traits,
enrichment, ID Sync strategies, mobile ids and deterministic messageIds."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from activation_pipeline.activation.model import Change, ChangeKind, ProfileView
from activation_pipeline.activation.payloads import plan_changes, plan_list_change
from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.base import BatchContext, Operation, Outcome
from activation_pipeline.destinations.webhook.client import WebhookClient
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    connection,
    ident,
    profile,
    webhook_destination,
)


@pytest.fixture(scope="module")
def hook() -> Iterator[tuple[WebhookSandbox, WebhookClient]]:
    with WebhookSandbox() as sandbox:
        client = WebhookClient(webhook_destination(sandbox.hook_url, batch=True))
        yield sandbox, client
        client.close()


def deliver(
    hook: tuple[WebhookSandbox, WebhookClient], changes: list[Change], conn: Connection
) -> list[dict[str, Any]]:
    """Plan the changes, POST them to the sandbox, return the messages it accepted."""
    sandbox, client = hook
    sandbox.reset()
    planned = plan_changes(changes, conn, kind="event", space="acme")
    records = [r for p in planned for r in p.records]
    if not records:
        return []
    result = client.send(records, BatchContext(connection_id=conn.connection_id, sync_id="s"))
    assert all(r.outcome is Outcome.ACKNOWLEDGED for r in result.results)
    return sandbox.messages()


def entered(p: ProfileView | None = None) -> Change:
    return Change(ChangeKind.ENTERED, p or profile(), AS_OF)


def exited(p: ProfileView | None = None) -> Change:
    return Change(ChangeKind.EXITED, p or profile(), AS_OF)


PERSONAS_KEYS = {"computation_class", "computation_key", "computation_id", "space_id", "namespace"}


@pytest.mark.parametrize(("change", "value"), [(entered, True), (exited, False)])
def test_audience_identify(hook: Any, change: Any, value: bool) -> None:
    [message] = deliver(hook, [change()], connection())
    assert message["type"] == "identify"
    assert message["userId"] == "u1"
    assert message["traits"] == {"vip": value, "email": "first@example.com"}
    assert message["timestamp"] == "2024-06-01T00:00:00.000Z"
    assert message["messageId"].startswith("ap_")
    personas = message["context"]["personas"]
    assert set(personas) == PERSONAS_KEYS
    assert personas["computation_class"] == "audience"
    assert personas["computation_key"] == "vip"
    assert personas["space_id"] == "acme"


@pytest.mark.parametrize(
    ("change", "event", "value"), [(entered, "Audience Entered", True), (exited, "Audience Exited", False)]
)
def test_audience_track(hook: Any, change: Any, event: str, value: bool) -> None:
    [message] = deliver(hook, [change()], connection(send_identify=False, send_track=True))
    assert message["type"] == "track"
    assert message["event"] == event
    assert message["properties"] == {"audience_key": "vip", "vip": value}
    assert message["context"]["traits"] == {"email": "first@example.com"}


def test_identify_and_track_together_have_distinct_ids(hook: Any) -> None:
    messages = deliver(hook, [entered()], connection(send_track=True))
    assert [m["type"] for m in messages] == ["identify", "track"]
    assert len({m["messageId"] for m in messages}) == 2


def test_computed_trait_changed(hook: Any) -> None:
    change = Change(ChangeKind.TRAIT_CHANGED, profile(), AS_OF, old_value=300.0, new_value=450.0)
    conn = connection("trait:total_revenue_180_days", send_track=True)
    identify, track = deliver(hook, [change], conn)
    assert identify["traits"] == {"total_revenue_180_days": 450.0, "email": "first@example.com"}
    assert track["event"] == "Trait Computed"
    assert track["properties"] == {"trait_key": "total_revenue_180_days", "total_revenue_180_days": 450.0}
    assert identify["context"]["personas"]["computation_class"] == "computed_trait"


def test_computed_trait_unchanged_sends_nothing(hook: Any) -> None:
    change = Change(ChangeKind.TRAIT_CHANGED, profile(), AS_OF, old_value=450.0, new_value=450.0)
    assert deliver(hook, [change], connection("trait:total_revenue_180_days", send_track=True)) == []


def test_account_level_trait_goes_as_group(hook: Any) -> None:
    p = profile(account_id="acct_9")
    change = Change(ChangeKind.TRAIT_CHANGED, p, AS_OF, old_value=None, new_value=12, level="account")
    [message] = deliver(hook, [change], connection("trait:employees"))
    assert message["type"] == "group"
    assert message["groupId"] == "acct_9"
    assert message["traits"] == {"employees": 12}
    assert message["userId"] == "u1"


def test_enrichment_in_traits_and_properties(hook: Any) -> None:
    p = profile(traits={"first_name": "Ann", "address": {"city": "Lyon"}, "plan": "pro"})
    conn = connection(
        setup="customized",
        send_track=True,
        trait_enrichment=[
            {"trait": "first_name", "as": "firstName"},
            {"trait": "address.city", "as": "city"},
            "missing",
        ],
    )
    identify, track = deliver(hook, [entered(p)], conn)
    assert identify["traits"] == {
        "firstName": "Ann",
        "city": "Lyon",
        "vip": True,
        "email": "first@example.com",
    }
    assert track["properties"] == {"audience_key": "vip", "firstName": "Ann", "city": "Lyon", "vip": True}


def test_default_setup_sends_no_enrichment(hook: Any) -> None:
    p = profile(traits={"first_name": "Ann"})
    [message] = deliver(
        hook, [entered(p)], connection(trait_enrichment=[{"trait": "first_name", "as": "fn"}])
    )
    assert "fn" not in message["traits"]


def multi() -> ProfileView:
    """Three emails added on days 0, 1, 2; two phones; a custom id."""
    return profile(
        emails=("old@example.com", "mid@example.com", "new@example.com"),
        phones=("+33100000001", "+33100000002"),
        custom={"crm_id": "CRM-1"},
    )


def _external(message: dict[str, Any]) -> list[tuple[str, str]]:
    ids = message["context"]["externalIds"]
    assert all(i["collection"] == "users" and i["encoding"] == "none" for i in ids)
    return sorted((i["type"], i["id"]) for i in ids)


def test_without_id_sync_one_message_with_every_value_and_no_custom_ids(hook: Any) -> None:
    [message] = deliver(hook, [entered(multi())], connection())
    assert message["traits"] == {"email": "new@example.com", "phone": "+33100000002", "vip": True}
    assert _external(message) == sorted(
        [("email", e) for e in ("old@example.com", "mid@example.com", "new@example.com")]
        + [("phone", p) for p in ("+33100000001", "+33100000002")]
    )
    assert "crm_id" not in message["traits"]


@pytest.mark.parametrize(
    ("strategy", "expected"), [("last_added", "new@example.com"), ("first_added", "old@example.com")]
)
def test_id_sync_single_value_strategies(hook: Any, strategy: str, expected: str) -> None:
    conn = connection(
        setup="customized",
        id_sync=[
            {"identifier": "email", "as": "EMAIL", "strategy": strategy},
            {"identifier": "crm_id", "as": "crm", "strategy": "last_added"},
        ],
    )
    [message] = deliver(hook, [entered(multi())], conn)
    assert message["traits"] == {"EMAIL": expected, "crm": "CRM-1", "vip": True}


def test_id_sync_all_strategy_sends_every_value_in_one_message(hook: Any) -> None:
    conn = connection(
        setup="customized",
        send_identify=False,
        send_track=True,
        id_sync=[
            {"identifier": "email", "as": "email", "strategy": "all"},
            {"identifier": "phone", "as": "phone", "strategy": "last_added"},
        ],
    )
    [message] = deliver(hook, [entered(multi())], conn)
    assert message["event"] == "Audience Entered"
    assert message["context"]["traits"] == {"email": "new@example.com", "phone": "+33100000002"}
    assert _external(message) == sorted(
        [("email", e) for e in ("old@example.com", "mid@example.com", "new@example.com")]
        + [("phone", "+33100000002")]
    )


def test_first_seen_order_not_input_order(hook: Any) -> None:
    p = multi()
    reordered = ProfileView(p.profile_id, tuple(reversed(p.identifiers)), p.traits)
    conn = connection(
        setup="customized", id_sync=[{"identifier": "email", "as": "email", "strategy": "first_added"}]
    )
    [message] = deliver(hook, [entered(reordered)], conn)
    assert message["traits"]["email"] == "old@example.com"


@pytest.mark.parametrize("send_mobile_ids", [False, True])
def test_mobile_ids_only_with_send_mobile_ids(hook: Any, send_mobile_ids: bool) -> None:
    p = profile(idfas=("IDFA-1",), android=("AND-1",))
    [message] = deliver(hook, [entered(p)], connection(send_mobile_ids=send_mobile_ids))
    external = _external(message) if "externalIds" in message["context"] else []
    if send_mobile_ids:
        assert message["context"]["device"] in (
            {"advertisingId": "IDFA-1", "type": "ios"},
            {"advertisingId": "AND-1", "type": "android"},
        )
        assert ("android.id", "AND-1") in external and ("ios.idfa", "IDFA-1") in external
    else:
        assert "device" not in message["context"]
        assert not any(kind in ("ios.idfa", "android.id") for kind, _ in external)
    assert "ios.idfa" not in message["traits"]


def test_mobile_id_via_id_sync_goes_to_device(hook: Any) -> None:
    p = profile(idfas=("IDFA-OLD", "IDFA-NEW"))
    conn = connection(
        setup="customized",
        send_mobile_ids=True,
        id_sync=[{"identifier": "ios.idfa", "as": "idfa", "strategy": "last_added"}],
    )
    [message] = deliver(hook, [entered(p)], conn)
    assert message["context"]["device"] == {"advertisingId": "IDFA-NEW", "type": "ios"}
    assert "idfa" not in message["traits"]


def test_anonymous_profile_uses_anonymous_id(hook: Any) -> None:
    p = ProfileView("p9", (ident("anonymous_id", "anon-old"), ident("anonymous_id", "anon-new", 3)))
    [message] = deliver(hook, [entered(p)], connection())
    assert message["anonymousId"] == "anon-new"
    assert "userId" not in message


def test_message_ids_are_deterministic() -> None:
    conn = connection(send_track=True)
    first = plan_changes([entered(multi())], conn, kind="event", space="acme")
    again = plan_changes([entered(multi())], conn, kind="event", space="acme")
    later = plan_changes(
        [Change(ChangeKind.ENTERED, multi(), AS_OF + timedelta(hours=1))], conn, kind="event", space="acme"
    )
    ids = [r.record_id for p in first for r in p.records]
    assert ids == [r.record_id for p in again for r in p.records]
    assert set(ids).isdisjoint(r.record_id for p in later for r in p.records)
    assert all(r.record_id == r.payload["messageId"] for p in first for r in p.records)


def test_change_kind_must_fit_connection() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        plan_changes(
            [Change(ChangeKind.TRAIT_CHANGED, profile(), AS_OF, 1, 2)], connection(), kind="event", space="a"
        )


def test_list_record_carries_all_selected_identifiers_and_traits() -> None:
    conn = connection(
        destination="meta",
        setup="customized",
        trait_enrichment=[{"trait": "first_name", "as": "firstName"}],
        id_sync=[
            {"identifier": "email", "as": "email", "strategy": "all"},
            {"identifier": "phone", "as": "phone", "strategy": "last_added"},
        ],
    )
    p = ProfileView(multi().profile_id, multi().identifiers, {"first_name": "Ann"})
    planned = plan_list_change(entered(p), conn, space="acme")
    assert planned is not None
    [record] = planned.records
    assert record.operation is Operation.ADD
    assert record.payload == {
        "identifiers": {
            "email": ["old@example.com", "mid@example.com", "new@example.com"],
            "phone": ["+33100000002"],
        },
        "traits": {"firstName": "Ann"},
    }
    removed = plan_list_change(exited(p), conn, space="acme")
    assert removed is not None and removed.records[0].operation is Operation.REMOVE
