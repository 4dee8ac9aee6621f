"""HubSpot client against the fake HubSpot CRM API over real HTTP: upserts, list memberships, limits."""

from collections.abc import Iterator

import pytest

from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.hubspot.client import HubSpotClient
from activation_pipeline.destinations.hubspot.server import HubSpotSandbox
from activation_pipeline.destinations.hubspot.settings import HubSpotDestination
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline_tests.test_destinations.contact_messages import (
    Sleeps,
    identify,
    outcomes,
    reasons,
    track,
)

LIST = "77"
CTX = BatchContext("audience.lapsed_customers.hubspot", "sync_1", connection_settings={"list_id": LIST})
UPSERT = "/crm/v3/objects/contacts/batch/upsert"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubSpotSandbox]:
    monkeypatch.setenv("HUBSPOT_TEST_TOKEN", "pat-na1-test")
    with HubSpotSandbox(access_token="pat-na1-test") as server:
        server.create_list(LIST)
        server.define_property("plan")
        yield server


def client(url: str, sleeps: Sleeps | None = None) -> HubSpotClient:
    destination = HubSpotDestination.model_validate(
        {
            "id": "hubspot",
            "type": "hubspot",
            "settings": {
                "base_url": url,
                "access_token": {"env": "HUBSPOT_TEST_TOKEN"},
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=3)
    )
    return HubSpotClient(destination, options)


def test_upsert_with_properties_and_list_membership(fake: HubSpotSandbox) -> None:
    """Contacts are upserted by email with enrichment properties; entered join the list, exited leave it."""
    hubspot = client(fake.url)
    first = hubspot.send(
        [identify(1, firstname="Ann", plan="pro"), identify(2, email=" User2@Example.COM ")], CTX
    )
    assert set(outcomes(first).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.members(LIST) == {"user1@example.com", "user2@example.com"}
    assert fake.contact("user1@example.com") == {
        "email": "user1@example.com",
        "firstname": "Ann",
        "plan": "pro",
    }
    second = hubspot.send([identify(2, member=False)], CTX)
    assert outcomes(second) == {"r2": Outcome.ACKNOWLEDGED}
    assert fake.members(LIST) == {"user1@example.com"}
    assert second.metrics["removed"] == 1.0 and second.metrics["http_requests"] == 2.0
    upserts = fake.successful(UPSERT)
    assert all("lapsed_customers" not in i["properties"] for r in upserts for i in r.json()["inputs"])


def test_auth_is_a_bearer_token(fake: HubSpotSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong token is a 401: terminal for the batch, never retried."""
    monkeypatch.setenv("HUBSPOT_TEST_TOKEN", "wrong")
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED}
    assert "HTTP 401" in reasons(result)["r1"]
    assert [r.status for r in fake.requests] == [401]


def test_batches_of_at_most_100_with_one_input_per_email(fake: HubSpotSandbox) -> None:
    """150 records (two for one person) go as two upserts of 100 and 49 distinct emails."""
    records = [identify(i) for i in range(149)] + [identify(150, email="user0@example.com", member=True)]
    result = client(fake.url).send(records, CTX)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    sizes = [len(r.json()["inputs"]) for r in fake.successful(UPSERT)]
    assert sizes == [100, 49]
    assert len(fake.members(LIST)) == 149


def test_fake_refuses_what_hubspot_refuses(fake: HubSpotSandbox) -> None:
    """The fake enforces the batch limit, duplicate ids and undefined properties as HubSpot does."""
    import requests

    auth = {"Authorization": "Bearer pat-na1-test"}
    too_many = {"inputs": [{"idProperty": "email", "id": f"u{i}@x.io", "properties": {}} for i in range(101)]}
    assert requests.post(fake.url + UPSERT, json=too_many, headers=auth, timeout=5).status_code == 400
    twice = {"inputs": [{"idProperty": "email", "id": "a@x.io", "properties": {}}] * 2}
    assert requests.post(fake.url + UPSERT, json=twice, headers=auth, timeout=5).status_code == 400
    unknown = {"inputs": [{"idProperty": "email", "id": "a@x.io", "properties": {"nope": "1"}}]}
    answer = requests.post(fake.url + UPSERT, json=unknown, headers=auth, timeout=5)
    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"


def test_undefined_property_fails_the_batch_terminally(fake: HubSpotSandbox) -> None:
    """HubSpot writes only defined properties: the batch is refused and recorded, not retried."""
    result = client(fake.url).send([identify(1, favourite_colour="red")], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED}
    assert "favourite_colour" in reasons(result)["r1"]
    assert len(fake.requests) == 1


def test_throttle_waits_the_window_and_retries(fake: HubSpotSandbox) -> None:
    """A 429 (no Retry-After, HubSpot's rate-limit headers) waits the interval it names, then succeeds."""
    sleeps = Sleeps()
    fake.fail_next(
        1,
        429,
        body={"status": "error", "errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"},
        headers={"X-HubSpot-RateLimit-Interval-Milliseconds": "10000", "X-HubSpot-RateLimit-Remaining": "0"},
    )
    result = client(fake.url, sleeps).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert 10.0 <= sleeps[0] < 11.0
    assert result.metrics["http_retries"] == 1.0


def test_fake_rolling_window_answers_429() -> None:
    """Past `calls_per_window` in the window, the fake answers HubSpot's RATE_LIMIT 429."""
    import requests

    with HubSpotSandbox(access_token="t", calls_per_window=2) as server:
        server.create_list("1")
        codes = [
            requests.put(
                server.url + "/crm/v3/lists/1/memberships/add-and-remove",
                json={"recordIdsToAdd": []},
                headers={"Authorization": "Bearer t"},
                timeout=5,
            )
            for _ in range(3)
        ]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert codes[2].json()["errorType"] == "RATE_LIMIT"
    assert codes[2].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"


def test_server_errors_retry_then_stay_for_the_next_run(fake: HubSpotSandbox) -> None:
    """5xx is transient: retried, and left as `retry` when the attempts run out."""
    fake.fail_next(5, 502)
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.RETRY}
    assert len(fake.requests) == 3


def test_per_record_errors_and_unaddressable_records(fake: HubSpotSandbox) -> None:
    """An input HubSpot refuses (207) fails alone; no email, or a track, fails without a request."""
    fake.reject_items(lambda item: item["id"] == "user2@example.com", "INVALID_EMAIL")
    no_email = identify(3, email="not-an-email")
    result = client(fake.url).send([identify(1), identify(2), no_email, track(4)], CTX)
    assert outcomes(result) == {
        "r1": Outcome.ACKNOWLEDGED,
        "r2": Outcome.FAILED,
        "r3": Outcome.FAILED,
        "t4": Outcome.FAILED,
    }
    assert "INVALID_EMAIL" in reasons(result)["r2"]
    assert fake.members(LIST) == {"user1@example.com"}


def test_membership_errors(fake: HubSpotSandbox) -> None:
    """An unknown list is a terminal 404 for its records; a dynamic list cannot be changed."""
    result = client(fake.url).send(
        [identify(1)], BatchContext("c", "s", connection_settings={"list_id": "9"})
    )
    assert outcomes(result) == {"r1": Outcome.FAILED}
    assert "list membership: HTTP 404" in reasons(result)["r1"]
    fake.create_list("10", "DYNAMIC")
    result = client(fake.url).send(
        [identify(1)], BatchContext("c", "s", connection_settings={"list_id": "10"})
    )
    assert "MANUAL" in reasons(result)["r1"]


def test_traits_become_properties_without_a_list(fake: HubSpotSandbox) -> None:
    """A computed trait connection writes the trait as a property and touches no list."""
    fake.define_property("total_revenue_180d")
    record = identify(1, key="total_revenue_180d", member=612.5, audience=False)
    result = client(fake.url).send([record], BatchContext("c", "s"))
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert fake.contact("user1@example.com") == {"email": "user1@example.com", "total_revenue_180d": "612.5"}
    assert [r.path for r in fake.requests] == [UPSERT]


class Tokens:
    """A rate limiter that counts the tokens taken."""

    def __init__(self) -> None:
        self.taken = 0

    def acquire(self) -> None:
        """Count one token."""
        self.taken += 1


def test_the_rate_counts_contacts_five_a_second(fake: HubSpotSandbox) -> None:
    """The seed's 5 objects per second: one limiter token per contact (plus the membership call), so the
    plan's time for 100 contacts is 20 s while the calls are two."""
    tokens = Tokens()
    destination = HubSpotDestination.model_validate(
        {
            "id": "hubspot",
            "type": "hubspot",
            "settings": {"base_url": fake.url, "access_token": {"env": "HUBSPOT_TEST_TOKEN"}},
        }
    )
    hubspot = HubSpotClient(destination, ClientOptions(rate_limiter=tokens, sleep=Sleeps()))
    result = hubspot.send([identify(i) for i in range(30)], CTX)
    assert result.metrics["http_requests"] == 2.0
    assert tokens.taken == 31  # 30 contacts, one membership call
    limits = CATALOGUE["hubspot"].capabilities(destination)
    assert (limits.rate_limit, limits.requests_for(100), limits.seconds_for(100)) == (5, 1, 20.0)
