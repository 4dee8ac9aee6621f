"""Intercom client against the fake Intercom API over real HTTP: contacts, tags, attributes, events, throttling."""

import time
from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.intercom.client import IntercomClient
from activation_pipeline.destinations.intercom.server import IntercomSandbox
from activation_pipeline.destinations.intercom.settings import IntercomDestination

TAGS = BatchContext("audience.cart_abandoners.intercom", "sync_1")
ATTRIBUTE = BatchContext(
    "audience.cart_abandoners.intercom", "sync_1", connection_settings={"audience_as": "attribute"}
)
PERSONAS = {"computation_class": "audience", "computation_key": "cart_abandoners"}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[IntercomSandbox]:
    monkeypatch.setenv("INTERCOM_TEST_TOKEN", "ic-token")
    with IntercomSandbox(access_token="ic-token") as server:
        yield server


def client(fake: IntercomSandbox, sleeps: Sleeps | None = None) -> IntercomClient:
    destination = IntercomDestination.model_validate(
        {
            "id": "intercom",
            "type": "intercom",
            "settings": {"base_url": fake.url, "access_token": {"env": "INTERCOM_TEST_TOKEN"}},
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return IntercomClient(destination, options)


def identify(i: int, member: bool = True, user: bool = True, **traits: Any) -> OutboundRecord:
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": f"id-{i}-{member}",
        "timestamp": "2026-11-01T00:00:00Z",
        "traits": {
            "email": f"user{i}@example.com",
            "first_name": f"N{i}",
            "cart_abandoners": member,
            **traits,
        },
        "context": {"personas": PERSONAS},
    }
    if user:
        message["userId"] = f"u{i}"
    return OutboundRecord(message["messageId"], f"p{i}", Operation.IDENTIFY, message)


def track(i: int, **properties: Any) -> OutboundRecord:
    message = {
        "type": "track",
        "messageId": f"tr-{i}",
        "timestamp": "2026-11-01T00:00:00Z",
        "userId": f"u{i}",
        "event": "Audience Entered",
        "properties": {"audience_key": "cart_abandoners", "cart_abandoners": True, **properties},
        "context": {"personas": PERSONAS, "traits": {"email": f"user{i}@example.com"}},
    }
    return OutboundRecord(f"tr-{i}", f"p{i}", Operation.TRACK, message)


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_entering_members_are_created_and_tagged(fake: IntercomSandbox) -> None:
    """New contacts by external id, their attribute created first, the audience as a tag (not an attribute)."""
    result = client(fake).send([identify(1), identify(2)], TAGS)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.tagged("cart_abandoners") == {"u1", "u2"}
    contact = fake.contact_by("external_id", "u1")
    assert contact is not None and contact["email"] == "user1@example.com"
    assert contact["custom_attributes"] == {"first_name": "N1"}
    assert fake.attributes == {"first_name": "string"}
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths[:2] == [("GET", "/data_attributes"), ("POST", "/data_attributes")]
    assert paths.count(("POST", "/tags")) == 1  # the tag is made once
    assert all(r.header("intercom-version") == "2.11" for r in fake.requests)
    assert result.metrics["contacts_created"] == 2 and result.metrics["tags_added"] == 2


def test_exits_remove_the_tag_and_unknown_exits_create_nobody(fake: IntercomSandbox) -> None:
    """Removals detach the tag; an exit of a contact Intercom does not have is done without creating one."""
    c = client(fake)
    c.send([identify(1), identify(2)], TAGS)
    result = c.send([identify(1, member=False), identify(7, member=False)], TAGS)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.tagged("cart_abandoners") == {"u2"}
    assert fake.contact_by("external_id", "u7") is None
    assert result.metrics["tags_removed"] == 1 and result.metrics["contacts_updated"] == 1


def test_attribute_mode_writes_the_boolean(fake: IntercomSandbox) -> None:
    """audience_as: attribute sets a boolean custom attribute, true on entry and false on exit; no tags."""
    c = client(fake)
    c.send([identify(1)], ATTRIBUTE)
    c.send([identify(1, member=False)], ATTRIBUTE)
    contact = fake.contact_by("external_id", "u1")
    assert contact is not None and contact["custom_attributes"]["cart_abandoners"] is False
    assert fake.attributes["cart_abandoners"] == "boolean" and not fake.tags


def test_found_by_email_when_the_external_id_is_new(fake: IntercomSandbox) -> None:
    """A contact Intercom knows only by email is updated (and given the external id), not duplicated."""
    anonymous = identify(3, user=False)
    c = client(fake)
    c.send([anonymous], ATTRIBUTE)
    c.send([identify(3)], ATTRIBUTE)
    assert len(fake.contacts) == 1
    contact = fake.contact_by("email", "user3@example.com")
    assert contact is not None and contact["external_id"] == "u3"


def test_events_go_after_identifies_and_unknown_contacts_are_created(fake: IntercomSandbox) -> None:
    """Identifies first, so a batch's track lands on the contact it made; an event answered 404 (no such
    contact) creates the contact and is sent again."""
    result = client(fake).send([track(1), identify(1), track(9)], ATTRIBUTE)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    calls = [(r.method, r.path, r.status) for r in fake.requests if r.path in ("/events", "/contacts")]
    assert calls == [
        ("POST", "/contacts", 200),  # identify 1
        ("POST", "/events", 202),  # track 1, after its identify
        ("POST", "/events", 404),  # track 9: Intercom has no such contact
        ("POST", "/contacts", 200),
        ("POST", "/events", 202),
    ]
    assert [e["user_id"] for e in fake.events] == ["u1", "u9"]
    assert fake.events[0]["metadata"] == {"audience_key": "cart_abandoners", "cart_abandoners": True}
    assert result.metrics["contacts_created"] == 2


def test_more_than_ten_metadata_keys_fail_without_a_request(fake: IntercomSandbox) -> None:
    """Intercom takes at most 10 metadata keys per event."""
    extra = {f"p{k}": k for k in range(9)}
    result = client(fake).send([track(1, **extra)], ATTRIBUTE)
    assert outcomes(result) == {"tr-1": Outcome.FAILED}
    assert not fake.requests


def test_wrong_attribute_type_is_a_terminal_record_error(fake: IntercomSandbox) -> None:
    """A value that does not fit the attribute's type is refused (400): that record fails, the next succeeds."""
    c = client(fake)
    c.send([identify(1, score=5)], ATTRIBUTE)
    result = c.send([identify(2, score="high"), identify(3, score=7.5)], ATTRIBUTE)
    assert outcomes(result) == {"id-2-True": Outcome.FAILED, "id-3-True": Outcome.ACKNOWLEDGED}
    assert fake.attributes["score"] == "float"  # made from a whole number, still takes 7.5


def test_rate_limit_429_waits_until_the_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the window's calls the fake answers 429 with X-RateLimit-Reset; the client waits and goes on."""
    with IntercomSandbox(access_token="t", calls_per_window=3, window_seconds=1.0) as server:
        monkeypatch.setenv("INTERCOM_TEST_TOKEN", "t")
        real_sleeps: list[float] = []

        def sleep(seconds: float) -> None:
            real_sleeps.append(seconds)
            time.sleep(seconds)

        destination = IntercomDestination.model_validate(
            {
                "id": "ic",
                "type": "intercom",
                "settings": {"base_url": server.url, "access_token": {"env": "INTERCOM_TEST_TOKEN"}},
            }
        )
        c = IntercomClient(destination, ClientOptions(sleep=sleep, retry=RetryPolicy(max_attempts=6)))
        result = c.send([identify(1), identify(2)], ATTRIBUTE)
        assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
        throttled = [r for r in server.requests if r.status == 429]
        assert (
            throttled and throttled[0].header("x-ratelimit-remaining") is None
        )  # a request header, not ours
        assert real_sleeps and result.metrics["http_retries"] >= 1


def test_server_errors_are_retried_and_a_bad_token_fails(
    fake: IntercomSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 502 is transient (retried); a 401 is terminal for the record."""
    fake.fail_once(502)
    result = client(fake).send([identify(1)], ATTRIBUTE)
    assert outcomes(result) == {"id-1-True": Outcome.ACKNOWLEDGED} and result.metrics["http_retries"] == 1
    monkeypatch.setenv("INTERCOM_TEST_TOKEN", "wrong")
    result = client(fake).send([identify(2)], ATTRIBUTE)
    assert outcomes(result) == {"id-2-True": Outcome.FAILED} and "401" in result.results[0].reason


def test_a_known_contact_is_updated_through_the_conflict_answer(fake: IntercomSandbox) -> None:
    """Create first: Intercom's 409 names the contact with that external id, which is then updated (two
    calls for a known contact, one for a new one; no duplicate)."""
    c = client(fake)
    c.send([identify(4)], ATTRIBUTE)
    fake.reset()
    result = c.send([identify(4, first_name="Renamed")], ATTRIBUTE)
    assert outcomes(result) == {"id-4-True": Outcome.ACKNOWLEDGED}
    assert [(r.method, r.path.split("/")[1], r.status) for r in fake.requests] == [
        ("POST", "contacts", 409),
        ("PUT", "contacts", 200),
    ]
    assert len(fake.contacts) == 1
    contact = fake.contact_by("external_id", "u4")
    assert contact is not None and contact["custom_attributes"]["first_name"] == "Renamed"
    assert result.metrics["contacts_updated"] == 1 and result.metrics["contacts_created"] == 0
