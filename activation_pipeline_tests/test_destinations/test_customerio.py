"""Customer.io client against the fake Track API v2 over real HTTP: batches, 207 refusals, limits, throttling."""

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.customerio.client import (
    MAX_REQUEST_BYTES,
    CustomerioClient,
    event_ulid,
)
from activation_pipeline.destinations.customerio.server import ULID, CustomerioSandbox
from activation_pipeline.destinations.customerio.settings import CustomerioDestination
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy

CTX = BatchContext("trait.total_revenue_180d.customerio", "sync_1")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[CustomerioSandbox]:
    monkeypatch.setenv("CIO_TEST_KEY", "cio-key")
    with CustomerioSandbox(site_id="site-1", api_key="cio-key") as server:
        yield server


def client(
    fake: CustomerioSandbox, sleeps: Sleeps | None = None, key: str = "CIO_TEST_KEY"
) -> CustomerioClient:
    destination = CustomerioDestination.model_validate(
        {
            "id": "customerio",
            "type": "customerio",
            "settings": {"base_url": fake.url, "site_id": "site-1", "api_key": {"env": key}},
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return CustomerioClient(destination, options)


def identify(i: int, **traits: Any) -> OutboundRecord:
    message = {
        "type": "identify",
        "messageId": f"m-id-{i}",
        "timestamp": "2026-11-01T00:00:00Z",
        "userId": f"u{i}",
        "traits": {"email": f"user{i}@example.com", "total_revenue_180d": 10.0 * i, **traits},
        "context": {"externalIds": [{"id": f"user{i}@example.com", "type": "email", "collection": "users"}]},
    }
    return OutboundRecord(f"m-id-{i}", f"p{i}", Operation.IDENTIFY, message)


def track(i: int, user: bool = True) -> OutboundRecord:
    message: dict[str, Any] = {
        "type": "track",
        "messageId": f"m-tr-{i}",
        "timestamp": "2026-11-01T00:00:00Z",
        "event": "Audience Entered",
        "properties": {"audience_key": "cart_abandoners", "cart_abandoners": True},
        "context": {"traits": {"email": f"user{i}@example.com"}},
    }
    if user:
        message["userId"] = f"u{i}"
    else:
        message["anonymousId"] = f"a{i}"
    return OutboundRecord(f"m-tr-{i}", f"p{i}", Operation.TRACK, message)


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_identify_and_track_in_one_batch_request(fake: CustomerioSandbox) -> None:
    """Attributes and events of 10 people go in one Basic-auth request; events get a ULID id."""
    records = [identify(i) for i in range(5)] + [track(i) for i in range(5)]
    result = client(fake).send(records, CTX)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    [request] = fake.requests
    assert request.path == "/api/v2/batch"
    assert request.header("authorization") == "Basic " + base64.b64encode(b"site-1:cio-key").decode()
    assert fake.people["id:u3"] == {"email": "user3@example.com", "total_revenue_180d": 30.0}
    assert len(fake.events) == 5 and all(ULID.match(e["id"]) for e in fake.events)
    assert result.metrics["http_requests"] == 1


def test_event_ids_are_stable_so_a_resend_deduplicates(fake: CustomerioSandbox) -> None:
    """The same messageId gives the same ULID; the platform keeps the event once."""
    assert event_ulid("m1", "2026-11-01T00:00:00Z") == event_ulid("m1", "2026-11-01T00:00:00Z")
    assert event_ulid("m1", "2026-11-01T00:00:00Z") != event_ulid("m2", "2026-11-01T00:00:00Z")
    c = client(fake)
    c.send([track(1)], CTX)
    c.send([track(1)], CTX)
    assert len(fake.events) == 1


def test_refused_actions_fail_only_their_record(fake: CustomerioSandbox) -> None:
    """A 207 names refused actions by batch_index: those records fail (terminal), the others are acknowledged."""
    fake.reject_items(lambda action: action["identifiers"].get("id") == "u2", "attribute_invalid")
    result = client(fake).send([identify(i) for i in range(4)], CTX)
    assert [r.status for r in fake.requests] == [207]
    assert outcomes(result) == {
        "m-id-0": Outcome.ACKNOWLEDGED,
        "m-id-1": Outcome.ACKNOWLEDGED,
        "m-id-2": Outcome.FAILED,
        "m-id-3": Outcome.ACKNOWLEDGED,
    }
    failed = next(r for r in result.results if r.outcome is Outcome.FAILED)
    assert "attribute_invalid" in failed.reason
    assert "id:u2" not in fake.people


def test_throttled_requests_are_retried_after_the_wait(fake: CustomerioSandbox) -> None:
    """429 with Retry-After, then 503: the client waits as told and delivers."""
    fake.throttle_next(1, retry_after=2)
    fake.fail_once(503)
    sleeps = Sleeps()
    result = client(fake, sleeps).send([identify(1)], CTX)
    assert outcomes(result) == {"m-id-1": Outcome.ACKNOWLEDGED}
    assert [r.status for r in fake.requests] == [429, 503, 200]
    assert sleeps[0] >= 2 and result.metrics["http_retries"] == 2


def test_the_fakes_own_rate_limit_answers_429() -> None:
    """Over 100 requests in a second the fake answers 429 (the fair-use limit), which the client retries."""
    with CustomerioSandbox(site_id="s", api_key="k", requests_per_second=2) as server:
        auth = "Basic " + base64.b64encode(b"s:k").decode()
        body = {"batch": [{"type": "person", "action": "identify", "identifiers": {"id": "u"}}]}
        statuses = [
            requests.post(
                f"{server.url}/api/v2/batch", json=body, headers={"Authorization": auth}, timeout=5
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]


def test_requests_stay_under_500_kb_and_oversized_actions_fail(fake: CustomerioSandbox) -> None:
    """Big attributes cut a batch into several requests of at most 500 KB; an action over 32 KB fails alone."""
    records = [identify(i, notes="x" * 20_000) for i in range(60)] + [identify(99, notes="y" * 40_000)]
    result = client(fake).send(records, CTX)
    sizes = [len(r.body) for r in fake.requests]
    assert len(sizes) == 3 and max(sizes) <= MAX_REQUEST_BYTES
    assert sum(len(r.json()["batch"]) for r in fake.requests) == 60
    found = outcomes(result)
    assert found.pop("m-id-99") is Outcome.FAILED
    assert set(found.values()) == {Outcome.ACKNOWLEDGED}


def test_a_record_without_user_id_or_email_fails_without_a_request(fake: CustomerioSandbox) -> None:
    """Customer.io keys people by id or email; an anonymous message with no email cannot be sent."""
    record = track(5, user=False)
    bare = OutboundRecord(record.record_id, "p5", Operation.TRACK, {**record.payload, "context": {}})
    result = client(fake).send([bare, track(6, user=False)], CTX)
    assert outcomes(result) == {"m-tr-5": Outcome.FAILED, "m-tr-6": Outcome.ACKNOWLEDGED}
    assert fake.requests[0].json()["batch"][0]["identifiers"] == {"email": "user6@example.com"}


def test_a_wrong_key_is_a_terminal_failure(fake: CustomerioSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """401 is not retried: every record of the request fails with the reason."""
    monkeypatch.setenv("CIO_WRONG", "nope")
    result = client(fake, key="CIO_WRONG").send([identify(1), identify(2)], CTX)
    assert set(outcomes(result).values()) == {Outcome.FAILED}
    assert [r.status for r in fake.requests] == [401]
    assert all("401" in r.reason for r in result.results)


def test_account_traits_go_to_objects_related_to_the_person(fake: CustomerioSandbox) -> None:
    """A group call upserts an object of the configured type and relates the person to it."""
    message = {
        "type": "group", "messageId": "g1", "timestamp": "2026-11-01T00:00:00Z", "userId": "u1",
        "groupId": "acct-9", "traits": {"account_revenue_90d": 1200.0},
    }  # fmt: skip
    result = client(fake).send([OutboundRecord("g1", "p1", Operation.GROUP, message)], CTX)
    assert outcomes(result) == {"g1": Outcome.ACKNOWLEDGED}
    assert fake.objects == {"1:acct-9": {"account_revenue_90d": 1200.0}}
    assert fake.requests[0].json()["batch"][0]["cio_relationships"] == [{"identifiers": {"id": "u1"}}]


def test_an_audience_exit_sets_the_attribute_false(fake: CustomerioSandbox) -> None:
    """Removals are the seed's identify with the audience key false; the person keeps the other attributes."""
    c = client(fake)
    c.send([identify(1, newsletter_engaged=True)], CTX)
    result = c.send([identify(1, newsletter_engaged=False)], CTX)
    assert outcomes(result) == {"m-id-1": Outcome.ACKNOWLEDGED}
    assert fake.people["id:u1"]["newsletter_engaged"] is False
    assert fake.people["id:u1"]["email"] == "user1@example.com"
