"""Salesforce Marketing Cloud (events and lists) against the fake tenant over real HTTP: the token and its
refresh, rowsets of at most 50 rows, refused rows isolated, throttling, membership removals."""

from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.salesforce_marketing_cloud.client import MarketingCloudClient
from activation_pipeline.destinations.salesforce_marketing_cloud.server import MarketingCloudSandbox
from activation_pipeline.destinations.salesforce_marketing_cloud.settings import MarketingCloudDestination
from activation_pipeline.destinations.salesforce_marketing_cloud_lists.client import MarketingCloudListClient
from activation_pipeline.destinations.salesforce_marketing_cloud_lists.settings import (
    MarketingCloudListDestination,
)

EVENTS = BatchContext("audience.cart_abandoners.sfmc", "sync_1")
LIST = BatchContext(
    "audience.lapsed_customers.sfmc_lists", "sync_1", connection_settings={"data_extension_key": "Lapsed"}
)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[MarketingCloudSandbox]:
    monkeypatch.setenv("SFMC_TEST_ID", "cid")
    monkeypatch.setenv("SFMC_TEST_SECRET", "csecret")
    with MarketingCloudSandbox(client_id="cid", client_secret="csecret", create_missing=False) as server:
        server.add_data_extension("Contacts", ("SubscriberKey",), ("email", "first_name", "cart_abandoners"))
        server.add_data_extension(
            "Events",
            ("EventId",),
            ("SubscriberKey", "EventName", "EventTime", "audience_key", "cart_abandoners"),
        )
        server.add_data_extension("Lapsed", ("SubscriberKey",), ("InAudience", "EmailAddress", "firstName"))
        yield server


def access(fake: MarketingCloudSandbox) -> dict[str, Any]:
    return {
        "base_url": fake.url,
        "client_id": {"env": "SFMC_TEST_ID"},
        "client_secret": {"env": "SFMC_TEST_SECRET"},
    }


def events_client(fake: MarketingCloudSandbox, sleeps: Sleeps | None = None) -> MarketingCloudClient:
    destination = MarketingCloudDestination.model_validate(
        {
            "id": "sfmc",
            "type": "salesforce_marketing_cloud",
            "settings": {
                **access(fake),
                "contact_data_extension_key": "Contacts",
                "event_data_extension_key": "Events",
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return MarketingCloudClient(destination, options)


def list_client(fake: MarketingCloudSandbox) -> MarketingCloudListClient:
    destination = MarketingCloudListDestination.model_validate(
        {"id": "sfmc_lists", "type": "salesforce_marketing_cloud_lists", "settings": access(fake)}
    )
    return MarketingCloudListClient(
        destination, ClientOptions(sleep=Sleeps(), retry=RetryPolicy(max_attempts=3))
    )


def identify(i: int, **traits: Any) -> OutboundRecord:
    message = {
        "type": "identify",
        "messageId": f"id-{i}",
        "timestamp": "2026-11-01T00:00:00Z",
        "userId": f"u{i}",
        "traits": {"email": f"user{i}@example.com", "first_name": f"N{i}", "cart_abandoners": True, **traits},
    }
    return OutboundRecord(f"id-{i}", f"p{i}", Operation.IDENTIFY, message)


def track(i: int) -> OutboundRecord:
    message = {
        "type": "track",
        "messageId": f"tr-{i}",
        "timestamp": "2026-11-01T00:00:00Z",
        "userId": f"u{i}",
        "event": "Audience Entered",
        "properties": {"audience_key": "cart_abandoners", "cart_abandoners": True},
    }
    return OutboundRecord(f"tr-{i}", f"p{i}", Operation.TRACK, message)


def member(i: int, operation: Operation = Operation.ADD, user: bool = True) -> OutboundRecord:
    identifiers: dict[str, list[str]] = {"email": [f"old{i}@example.com", f" User{i}@Example.com "]}
    if user:
        identifiers["user_id"] = [f"u{i}"]
    payload = {"identifiers": identifiers, "traits": {"firstName": f"N{i}"}}
    return OutboundRecord(f"{operation.value}-{i}", f"p{i}", operation, payload)


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_identify_and_track_become_rows_with_one_token(fake: MarketingCloudSandbox) -> None:
    """A token from the auth URI; contact rows upserted by subscriber key, event rows by messageId."""
    result = events_client(fake).send([identify(1), track(1), identify(2)], EVENTS)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.tokens_issued == 1
    token_call, *row_calls = fake.requests
    assert token_call.path == "/v2/token" and token_call.json()["grant_type"] == "client_credentials"
    assert [r.path for r in row_calls] == [
        "/hub/v1/dataevents/key:Contacts/rowset",
        "/hub/v1/dataevents/key:Events/rowset",
    ]
    assert all((r.header("authorization") or "").startswith("Bearer ") for r in row_calls)
    contacts = {r["SubscriberKey"]: r for r in fake.rows("Contacts")}
    assert contacts["u2"] == {
        "SubscriberKey": "u2",
        "email": "user2@example.com",
        "first_name": "N2",
        "cart_abandoners": True,
    }
    [event] = fake.rows("Events")
    assert (
        event["EventId"] == "tr-1"
        and event["SubscriberKey"] == "u1"
        and event["EventName"] == "Audience Entered"
    )
    assert result.metrics["http_requests"] == 2


def test_an_expired_token_is_refreshed_and_the_call_sent_again(fake: MarketingCloudSandbox) -> None:
    """A 401 on a data call fetches a new token once and resends; nothing fails."""
    client = events_client(fake)
    client.send([identify(1)], EVENTS)
    fake.expire_tokens()
    result = client.send([identify(2)], EVENTS)
    assert outcomes(result) == {"id-2": Outcome.ACKNOWLEDGED}
    assert fake.tokens_issued == 2 and result.metrics["token_refreshes"] == 1
    assert [r.status for r in fake.requests[-3:]] == [401, 200, 200]


def test_a_token_is_fetched_again_before_it_runs_out(fake: MarketingCloudSandbox) -> None:
    """A token with under a minute left is replaced before the call, not after a 401."""
    fake.token_ttl = 30
    client = events_client(fake)
    client.send([identify(1)], EVENTS)
    client.send([identify(2)], EVENTS)
    assert fake.tokens_issued == 2
    assert all(r.status == 200 for r in fake.requests)


def test_wrong_credentials_leave_records_for_the_next_run(
    fake: MarketingCloudSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No token, no data call: the records retry in a later run (fixing the secret needs no replay)."""
    monkeypatch.setenv("SFMC_TEST_SECRET", "wrong")
    result = events_client(fake).send([identify(1)], EVENTS)
    assert outcomes(result) == {"id-1": Outcome.RETRY}
    assert "token request failed" in result.results[0].reason
    assert [r.path for r in fake.requests] == ["/v2/token"]


def test_rowsets_hold_at_most_50_rows(fake: MarketingCloudSandbox) -> None:
    """120 identifies make 50 + 50 + 20 rows in three calls; the fake notes no guideline breach."""
    client = events_client(fake)
    result = client.send([identify(i) for i in range(100)], EVENTS)
    result2 = client.send([identify(i) for i in range(100, 120)], EVENTS)
    rowsets = [len(r.json()) for r in fake.requests if r.path.endswith("/rowset")]
    assert rowsets == [50, 50, 20] and not fake.violations
    assert len(fake.rows("Contacts")) == 120
    assert result.metrics["http_requests"] + result2.metrics["http_requests"] == 3


def test_a_refused_row_fails_alone(fake: MarketingCloudSandbox) -> None:
    """A rowset with an unknown column is refused whole (400); sent again row by row, only that row fails."""
    result = events_client(fake).send([identify(1), identify(2, loyalty="gold"), identify(3)], EVENTS)
    assert outcomes(result) == {
        "id-1": Outcome.ACKNOWLEDGED,
        "id-2": Outcome.FAILED,
        "id-3": Outcome.ACKNOWLEDGED,
    }
    failed = next(r for r in result.results if r.outcome is Outcome.FAILED)
    assert "the column 'loyalty' does not exist" in failed.reason
    assert sorted(r["SubscriberKey"] for r in fake.rows("Contacts")) == ["u1", "u3"]


def test_throttling_and_server_errors_are_retried(fake: MarketingCloudSandbox) -> None:
    """429 with Retry-After and a 500 are transient: waited out and sent again."""
    sleeps = Sleeps()
    client = events_client(fake, sleeps)
    client.send([identify(1)], EVENTS)  # token first, so the faults hit data calls
    fake.throttle_next(1, retry_after=3)
    fake.fail_once(500)
    result = client.send([identify(2)], EVENTS)
    assert outcomes(result) == {"id-2": Outcome.ACKNOWLEDGED}
    assert sleeps[0] >= 3 and result.metrics["http_retries"] == 2


def test_group_calls_and_missing_data_extensions_fail_per_record(fake: MarketingCloudSandbox) -> None:
    """Group calls have no data extension; a record without userId or email has no subscriber key."""
    group = OutboundRecord(
        "g1", "p1", Operation.GROUP, {"type": "group", "groupId": "a", "userId": "u1", "traits": {}}
    )
    nobody = OutboundRecord(
        "id-x", "px", Operation.IDENTIFY, {"type": "identify", "anonymousId": "a1", "traits": {}}
    )
    result = events_client(fake).send([group, nobody, identify(1)], EVENTS)
    assert outcomes(result) == {"g1": Outcome.FAILED, "id-x": Outcome.FAILED, "id-1": Outcome.ACKNOWLEDGED}


def test_list_membership_added_and_removed(fake: MarketingCloudSandbox) -> None:
    """Adds set the member column, removes clear it; the row is keyed by user id, the email normalised."""
    client = list_client(fake)
    result = client.send([member(1), member(2), member(3, user=False)], LIST)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    rows = {r["SubscriberKey"]: r for r in fake.rows("Lapsed")}
    assert rows["u1"] == {
        "SubscriberKey": "u1",
        "InAudience": True,
        "EmailAddress": "user1@example.com",
        "firstName": "N1",
    }
    assert "user3@example.com" in rows  # no user id: the email is the subscriber key
    removed = client.send([member(2, Operation.REMOVE)], LIST)
    assert outcomes(removed) == {"remove-2": Outcome.ACKNOWLEDGED}
    assert {r["SubscriberKey"]: r["InAudience"] for r in fake.rows("Lapsed")} == {
        "u1": True,
        "u2": False,
        "user3@example.com": True,
    }
    assert removed.metrics["members_removed"] == 1


def test_list_rows_are_cut_at_50_and_unkeyed_members_fail(fake: MarketingCloudSandbox) -> None:
    """200 members take four calls; a member with no user id and no valid email fails without one."""
    nobody = OutboundRecord(
        "add-x", "px", Operation.ADD, {"identifiers": {"email": ["not-an-email"]}, "traits": {}}
    )
    result = list_client(fake).send([member(i) for i in range(199)] + [nobody], LIST)
    assert [len(r.json()) for r in fake.requests if r.path.endswith("/rowset")] == [50, 50, 50, 49]
    assert outcomes(result)["add-x"] is Outcome.FAILED
    assert sum(o is Outcome.ACKNOWLEDGED for o in outcomes(result).values()) == 199


def test_an_unknown_data_extension_fails_the_batch(fake: MarketingCloudSandbox) -> None:
    """A connection naming a data extension the tenant lacks: every record fails with Marketing Cloud's reason."""
    context = BatchContext("c", "s", connection_settings={"data_extension_key": "Nope"})
    result = list_client(fake).send([member(1), member(2)], context)
    assert set(outcomes(result).values()) == {Outcome.FAILED}
    assert "Unable to find a data extension" in result.results[0].reason


def test_list_sync_refreshes_an_expired_token_and_waits_out_throttling(fake: MarketingCloudSandbox) -> None:
    """The list type shares the token and retry handling: an expired token and a 429 cost no record."""
    client = list_client(fake)
    client.send([member(1)], LIST)
    fake.expire_tokens()
    fake.throttle_next(1, retry_after=1)
    result = client.send([member(2), member(1, Operation.REMOVE)], LIST)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.tokens_issued == 2 and result.metrics["token_refreshes"] == 1
    assert {r["SubscriberKey"]: r["InAudience"] for r in fake.rows("Lapsed")} == {"u1": False, "u2": True}
