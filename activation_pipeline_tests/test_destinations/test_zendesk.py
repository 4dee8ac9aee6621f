"""Zendesk client against the fake Support API over real HTTP: bulk user jobs, name, tags, user fields."""

from collections.abc import Iterator

import pytest
import requests

from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.zendesk.client import ZendeskClient
from activation_pipeline.destinations.zendesk.server import ZendeskSandbox
from activation_pipeline.destinations.zendesk.settings import ZendeskDestination
from activation_pipeline_tests.test_destinations.contact_messages import (
    Sleeps,
    identify,
    outcomes,
    reasons,
    track,
)

AGENT = "agent@acme.example"
CTX = BatchContext("audience.lapsed_customers.zendesk", "sync_1")
UPSERT = "/api/v2/users/create_or_update_many"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZendeskSandbox]:
    monkeypatch.setenv("ZENDESK_TEST_TOKEN", "zd-token")
    with ZendeskSandbox(email=AGENT, api_token="zd-token") as server:
        server.define_user_field("plan", "lapsed_customers")
        yield server


def client(url: str, sleeps: Sleeps | None = None, **settings: object) -> ZendeskClient:
    destination = ZendeskDestination.model_validate(
        {
            "id": "zendesk",
            "type": "zendesk",
            "settings": {
                "base_url": url,
                "email": AGENT,
                "api_token": {"env": "ZENDESK_TEST_TOKEN"},
                **settings,
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=3)
    )
    return ZendeskClient(destination, options)


def test_users_upserted_with_a_name_and_tagged_then_untagged(fake: ZendeskSandbox) -> None:
    """A mapped `name` is used, else the email; entered get the tag, exited lose it."""
    zendesk = client(fake.url)
    first = zendesk.send([identify(1, name="Ann Lee", plan="pro", user_id="u1"), identify(2)], CTX)
    assert set(outcomes(first).values()) == {Outcome.ACKNOWLEDGED}
    ann = fake.user("user1@example.com")
    assert ann is not None and (ann["name"], ann["external_id"], ann["user_fields"]) == (
        "Ann Lee",
        "u1",
        {"plan": "pro"},
    )
    two = fake.user("user2@example.com")
    assert two is not None and two["name"] == "user2@example.com"
    assert fake.tagged("lapsed_customers") == {"user1@example.com", "user2@example.com"}
    second = zendesk.send([identify(2, member=False)], CTX)
    assert outcomes(second) == {"r2": Outcome.ACKNOWLEDGED}
    assert fake.tagged("lapsed_customers") == {"user1@example.com"}
    assert second.metrics["untagged"] == 1.0 and second.metrics["updated"] == 1.0


def test_audience_as_a_user_field_needs_no_tag_calls(fake: ZendeskSandbox) -> None:
    """With audience_as: user_field the membership is a checkbox set in the same upsert."""
    ctx = BatchContext("c", "s", connection_settings={"audience_as": "user_field"})
    result = client(fake.url).send([identify(1), identify(2, member=False)], ctx)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    one, two = fake.user("user1@example.com"), fake.user("user2@example.com")
    assert one is not None and one["user_fields"] == {"lapsed_customers": True} and one["tags"] == []
    assert two is not None and two["user_fields"] == {"lapsed_customers": False}
    assert not any("/tags" in r.path for r in fake.requests)


def test_name_fallbacks(fake: ZendeskSandbox) -> None:
    """name_fallback user_id names by the user id; none refuses a user without a mapped name, unsent."""
    by_id = client(fake.url, name_fallback="user_id").send([identify(1, user_id="u-1")], CTX)
    assert outcomes(by_id) == {"r1": Outcome.ACKNOWLEDGED}
    found = fake.user("user1@example.com")
    assert found is not None and found["name"] == "u-1"
    before = len(fake.requests)
    refused = client(fake.url, name_fallback="none").send([identify(2)], CTX)
    assert outcomes(refused) == {"r2": Outcome.FAILED} and "requires a name" in reasons(refused)["r2"]
    assert len(fake.requests) == before


def test_auth_is_email_slash_token(fake: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong token is a terminal 401."""
    monkeypatch.setenv("ZENDESK_TEST_TOKEN", "wrong")
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED} and "HTTP 401" in reasons(result)["r1"]


def test_failed_job_results_fail_only_their_record(fake: ZendeskSandbox) -> None:
    """A user the job reports `Failed` fails alone; a track or a record with no email or id fails unsent."""
    fake.reject_items(lambda u: u.get("email") == "user2@example.com", "Email: is blocked")
    no_ids = identify(3, email="")
    result = client(fake.url).send([identify(1), identify(2), no_ids, track(4)], CTX)
    assert outcomes(result) == {
        "r1": Outcome.ACKNOWLEDGED,
        "r2": Outcome.FAILED,
        "r3": Outcome.FAILED,
        "t4": Outcome.FAILED,
    }
    assert reasons(result)["r2"] == "UserUpdateError: Email: is blocked"
    assert fake.tagged("lapsed_customers") == {"user1@example.com"}


def test_batches_of_at_most_100_and_the_fake_refuses_more(fake: ZendeskSandbox) -> None:
    """The client's batch is 100 users; the fake refuses 101 as Zendesk does."""
    assert client(fake.url).max_batch == 100
    auth = (f"{AGENT}/token", "zd-token")
    users = {"users": [{"name": "x", "email": f"u{i}@x.io"} for i in range(101)]}
    assert requests.post(fake.url + UPSERT, json=users, auth=auth, timeout=5).status_code == 400


def test_throttle_honours_retry_after(fake: ZendeskSandbox) -> None:
    """A 429 with Retry-After waits that long, then succeeds."""
    fake.throttle_next(1, retry_after=7)
    sleeps = Sleeps()
    result = client(fake.url, sleeps).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert 7.0 <= sleeps[0] < 8.0


def test_fake_minute_limit_answers_429_with_retry_after() -> None:
    """Past the per-minute calls the fake answers 429 with Retry-After."""
    with ZendeskSandbox(email="a@b.io", api_token="t", calls_per_minute=1) as server:
        auth = ("a@b.io/token", "t")
        codes = [requests.get(server.url + "/api/v2/job_statuses/1", auth=auth, timeout=5) for _ in range(2)]
    assert [c.status_code for c in codes] == [404, 429]
    assert int(codes[1].headers["Retry-After"]) >= 1


def test_queued_jobs_are_polled_and_a_slow_one_left_for_the_next_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk job is asynchronous: polls back off; past the wait budget the records stay `retry`."""
    monkeypatch.setenv("ZENDESK_TEST_TOKEN", "zd-token")
    with ZendeskSandbox(email=AGENT, api_token="zd-token", queued_polls=2) as server:
        sleeps = Sleeps()
        assert outcomes(client(server.url, sleeps).send([identify(1)], CTX)) == {"r1": Outcome.ACKNOWLEDGED}
        assert sleeps == [1.0, 2.0]
        slow = client(server.url, job_wait_seconds=2).send([identify(2)], CTX)
        assert outcomes(slow) == {"r2": Outcome.RETRY} and "did not finish" in reasons(slow)["r2"]


def test_traits_go_to_a_user_field(fake: ZendeskSandbox) -> None:
    """A computed trait is written as a user field (named by the connection, else the trait key)."""
    fake.define_user_field("ltv")
    record = identify(1, key="total_revenue_180d", member=612.5, audience=False)
    ctx = BatchContext("c", "s", connection_settings={"user_field": "ltv"})
    assert outcomes(client(fake.url).send([record], ctx)) == {"r1": Outcome.ACKNOWLEDGED}
    found = fake.user("user1@example.com")
    assert found is not None and found["user_fields"] == {"ltv": 612.5}
