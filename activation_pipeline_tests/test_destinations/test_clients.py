"""Webhook, Braze, Iterable and function clients against their sandboxes over real HTTP."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.destinations.base import BatchContext, OutboundRecord, Outcome
from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.destinations.registry import UnknownDestinationTypeError, build_client
from activation_pipeline.destinations.webhook.client import compact_json, signature
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    braze_destination,
    connection,
    function_destination,
    iterable_destination,
    profile,
    webhook_destination,
)

CONTEXT = BatchContext(connection_id="audience.vip.x", sync_id="sync_test")
SAMPLE_FUNCTION = Path(__file__).resolve().parents[2] / "data/sample/functions/loyalty.py"
NO_WAIT = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=3))


def records(
    count: int, *, send_track: bool = True, anonymous: bool = False, source: str = "audience:vip"
) -> list[OutboundRecord]:
    """`count` profiles entering an audience: identify (+ track) each."""
    changes = [
        Change(
            ChangeKind.ENTERED,
            profile(f"p{i}", user_id=None if anonymous else f"u{i}", emails=(f"user{i}@example.com",)),
            AS_OF,
        )
        for i in range(count)
    ]
    planned = plan_changes(changes, connection(source, send_track=send_track), kind="event", space="acme")
    return [r for p in planned for r in p.records]


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


# ------------------------------------------------------------------------------------------- webhook


def test_signature_vector() -> None:
    assert signature("abc123", compact_json({"cool": True})) == "5099cab379b3be52908387457007040cc934ef86"


@pytest.mark.parametrize("batch", [False, True])
def test_webhook_signed_single_and_batch(batch: bool) -> None:
    with WebhookSandbox(shared_secret="abc123") as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, secret_env="HOOK_SECRET", batch=batch))
        sent = records(3)
        result = client.send(sent, CONTEXT)
        assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
        assert len(sandbox.requests) == (1 if batch else 6)
        assert [m["messageId"] for m in sandbox.messages()] == [r.record_id for r in sent]
        assert all(r.header("x-signature") for r in sandbox.requests)


def test_webhook_wrong_secret_is_a_permanent_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "not-the-secret")
    with WebhookSandbox(shared_secret="abc123") as sandbox:
        client = build_client(webhook_destination(sandbox.hook_url, secret_env="HOOK_SECRET"), NO_WAIT)
        result = client.send(records(1, send_track=False), CONTEXT)
        [only] = result.results
        assert only.outcome is Outcome.FAILED and "401" in only.reason
        assert len(sandbox.requests) == 1


def test_webhook_400_fails_only_that_record_in_single_mode() -> None:
    with WebhookSandbox() as sandbox:
        sandbox.reject_items(lambda m: m.get("userId") == "u1", "user u1 refused")
        client = build_client(webhook_destination(sandbox.hook_url), NO_WAIT)
        sent = records(3, send_track=False)
        result = client.send(sent, CONTEXT)
        failed = [r for r in result.results if r.outcome is Outcome.FAILED]
        assert [r.record_id for r in failed] == [sent[1].record_id]
        assert "user u1 refused" in failed[0].reason
        assert failed[0].response is not None and failed[0].response["status"] == 400


# ------------------------------------------------------------------------------------------- braze


@pytest.fixture
def braze() -> Iterator[BrazeSandbox]:
    with BrazeSandbox() as sandbox:
        yield sandbox


def test_braze_attributes_and_events(braze: BrazeSandbox) -> None:
    client = build_client(braze_destination(braze.url))
    result = client.send(records(2), CONTEXT)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    [request] = braze.requests
    assert request.path == "/users/track" and request.header("authorization") == "Bearer braze-sandbox-key"
    body = request.json()
    assert body["attributes"][0] == {
        "external_id": "u0",
        "email": "user0@example.com",
        "vip": True,
        "_update_existing_only": False,
    }
    event = body["events"][0]
    assert event["external_id"] == "u0" and event["name"] == "Audience Entered"
    assert event["properties"] == {"audience_key": "vip", "vip": True}
    assert event["time"] == "2024-06-01T00:00:00.000Z"
    assert braze.users["external_id:u1"]["vip"] is True


def test_braze_at_most_75_objects_a_request(braze: BrazeSandbox) -> None:
    client = build_client(braze_destination(braze.url))
    assert client.max_batch == 75
    result = client.send(records(40), CONTEXT)  # 80 objects
    assert len(result.results) == 80 and set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    sizes = [sum(len(r.json().get(k, [])) for k in ("attributes", "events")) for r in braze.requests]
    assert sizes == [75, 5]


def test_braze_per_item_errors_fail_only_those_records(braze: BrazeSandbox) -> None:
    braze.reject_items(
        lambda item: item.get("name") == "Audience Entered" and item["external_id"] == "u1", "bad_event"
    )
    client = build_client(braze_destination(braze.url))
    sent = records(2)
    result = client.send(sent, CONTEXT)
    failed = {r.record_id: r.reason for r in result.results if r.outcome is Outcome.FAILED}
    assert failed == {sent[3].record_id: "bad_event"}
    assert braze.requests[0].status == 201


def test_braze_anonymous_users_use_an_alias(braze: BrazeSandbox) -> None:
    client = build_client(braze_destination(braze.url))
    sent = records(1, send_track=False, anonymous=True)
    result = client.send(sent, CONTEXT)
    assert result.results[0].outcome is Outcome.ACKNOWLEDGED
    attributes = braze.requests[0].json()["attributes"][0]
    assert attributes["user_alias"] == {"alias_name": "p0", "alias_label": "anonymous_id"}


def test_braze_429_waits_for_rate_limit_reset(braze: BrazeSandbox) -> None:
    import time

    braze.fail_next(1, 429, headers={"X-RateLimit-Reset": str(int(time.time()) + 4)})
    waits: list[float] = []
    client = build_client(braze_destination(braze.url), ClientOptions(sleep=waits.append))
    assert outcomes(client.send(records(1), CONTEXT))
    assert len(waits) == 1 and 2 <= waits[0] <= 5


def test_braze_wrong_key_fails(braze: BrazeSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAZE_TEST_KEY", "wrong")
    client = build_client(braze_destination(braze.url), NO_WAIT)
    result = client.send(records(1), CONTEXT)
    assert {r.outcome for r in result.results} == {Outcome.FAILED}


# ------------------------------------------------------------------------------------------- iterable


@pytest.fixture
def iterable() -> Iterator[IterableSandbox]:
    with IterableSandbox() as sandbox:
        yield sandbox


def test_iterable_bulk(iterable: IterableSandbox) -> None:
    client = build_client(iterable_destination(iterable.url))
    sent = records(3)
    result = client.send(sent, CONTEXT)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    paths = [r.path for r in iterable.requests]
    assert paths == ["/api/users/bulkUpdate", "/api/events/trackBulk"]
    users = iterable.requests[0].json()["users"]
    assert users[0] == {
        "email": "user0@example.com",
        "userId": "u0",
        "dataFields": {"vip": True},
        "preferUserId": True,
        "mergeNestedObjects": True,
    }
    event = iterable.requests[1].json()["events"][0]
    assert event["eventName"] == "Audience Entered" and event["id"] == sent[1].record_id
    assert event["createdAt"] == 1717200000
    assert iterable.requests[0].header("api-key") == "iterable-sandbox-key"


def test_iterable_single_endpoints(iterable: IterableSandbox) -> None:
    client = build_client(iterable_destination(iterable.url, bulk=False))
    result = client.send(records(2), CONTEXT)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert sorted(r.path for r in iterable.requests) == ["/api/events/track"] * 2 + ["/api/users/update"] * 2
    assert iterable.requests[0].json() == iterable.requests[0].json() | {"preferUserId": True}


def test_iterable_bulk_invalid_email_fails_that_record(iterable: IterableSandbox) -> None:
    iterable.reject_items(lambda item: item.get("email") == "user1@example.com")
    client = build_client(iterable_destination(iterable.url))
    sent = records(3, send_track=False)
    result = client.send(sent, CONTEXT)
    failed = [r for r in result.results if r.outcome is Outcome.FAILED]
    assert [r.record_id for r in failed] == [sent[1].record_id]
    assert "email rejected" in failed[0].reason


# ------------------------------------------------------------------------------------------- function


def test_function_file_handlers() -> None:
    client = build_client(function_destination(str(SAMPLE_FUNCTION), programme="gold"))
    result = client.send(records(1), CONTEXT)
    identify, track = result.results
    assert identify.outcome is Outcome.ACKNOWLEDGED and track.outcome is Outcome.ACKNOWLEDGED
    assert track.response == {"returned": {"programme": "gold", "user": "u0", "enrolled": True, "tier": None}}


def test_function_group_without_handler_is_event_not_supported() -> None:
    client = build_client(function_destination(str(SAMPLE_FUNCTION)))
    change = Change(ChangeKind.TRAIT_CHANGED, profile(account_id="a1"), AS_OF, None, 3, level="account")
    planned = plan_changes([change], connection("trait:seats"), kind="event", space="acme")
    [result] = client.send(list(planned[0].records), CONTEXT).results
    assert result.outcome is Outcome.FAILED and "EventNotSupported" in result.reason


def _module_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> None:
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_function_exception_fails_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module_function(
        tmp_path,
        monkeypatch,
        "fn_failing",
        "def handle(event, settings):\n"
        "    if event['userId'] == 'u1':\n"
        "        raise ValueError('no such member')\n"
        "    return {'ok': True}\n",
    )
    client = build_client(function_destination("fn_failing:handle"))
    sent = records(2, send_track=False)
    result = client.send(sent, CONTEXT)
    assert [r.outcome for r in result.results] == [Outcome.ACKNOWLEDGED, Outcome.FAILED]
    assert result.results[1].reason == "ValueError: no such member"


def test_function_retryable_error_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _module_function(
        tmp_path,
        monkeypatch,
        "fn_retrying",
        "from activation_pipeline.destinations.function.client import RetryableError\n"
        "calls = []\n"
        "def handle(event, settings):\n"
        "    calls.append(event['messageId'])\n"
        "    if event['userId'] == 'u1' or len(calls) < 3:\n"
        "        raise RetryableError('busy')\n"
        "    return 'done'\n",
    )
    waits: list[float] = []
    client = build_client(
        function_destination("fn_retrying:handle"),
        ClientOptions(sleep=waits.append, retry=RetryPolicy(max_attempts=4)),
    )
    result = client.send(records(2, send_track=False), CONTEXT)
    assert [r.outcome for r in result.results] == [Outcome.ACKNOWLEDGED, Outcome.RETRY]
    assert "gave up after 4 attempts" in result.results[1].reason
    assert result.metrics["http_retries"] == 2 + 3


def test_unknown_type_is_refused() -> None:
    class Fake:
        type = "carrier_pigeon"

    with pytest.raises(UnknownDestinationTypeError, match="carrier_pigeon"):
        build_client(Fake())  # type: ignore[arg-type]
