"""Marketo Static Lists client against the fake Marketo REST API over real HTTP."""

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.marketo_static_lists.client import MarketoClient, WindowLimiter
from activation_pipeline.destinations.marketo_static_lists.server import MarketoSandbox
from activation_pipeline.destinations.marketo_static_lists.settings import MarketoDestination
from activation_pipeline.destinations.registry import build_client

LIST = 1042
CTX = BatchContext("aud.lapsed.marketo", "sync_1", connection_settings={"list_id": LIST})


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[MarketoSandbox]:
    monkeypatch.setenv("MARKETO_TEST_ID", "client-id")
    monkeypatch.setenv("MARKETO_TEST_SECRET", "client-secret")
    with MarketoSandbox("client-id", "client-secret") as server:
        server.create_list(LIST)
        yield server


def client(fake: MarketoSandbox, sleeps: Sleeps | None = None, **kwargs: Any) -> MarketoClient:
    destination = MarketoDestination.model_validate(
        {
            "id": "marketo",
            "type": "marketo_static_lists",
            "settings": {
                "base_url": f"{fake.url}/rest",
                "client_id": {"env": "MARKETO_TEST_ID"},
                "client_secret": {"env": "MARKETO_TEST_SECRET"},
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return MarketoClient(destination, options, **kwargs)


def rec(i: int, op: Operation = Operation.ADD, emails: list[str] | None = None) -> OutboundRecord:
    ids = {"email": emails if emails is not None else [f"user{i}@example.com"]}
    return OutboundRecord(f"r{i}", f"p{i}", op, {"identifiers": ids, "traits": {"firstName": "X"}})


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_add_found_leads_and_fail_missing_ones(fake: MarketoSandbox) -> None:
    one = fake.add_lead("User1@Example.com")
    two = fake.add_lead("user2@example.com")
    result = client(fake).send(
        [rec(1, emails=["  USER1@example.COM "]), rec(2), rec(3), rec(4, emails=["x"])], CTX
    )
    assert outcomes(result) == {
        "r1": Outcome.ACKNOWLEDGED,
        "r2": Outcome.ACKNOWLEDGED,
        "r3": Outcome.FAILED,
        "r4": Outcome.FAILED,
    }
    reasons = {r.record_id: r.reason for r in result.results}
    assert "lead not found" in reasons["r3"]
    assert "no valid email" in reasons["r4"]
    assert fake.members(LIST) == {one, two}
    sent = next(r.sent for r in result.results if r.record_id == "r1")
    assert sent == {
        "list_id": LIST,
        "operation": "add",
        "lookup_field": "email",
        "lookup_sha256": [hashlib.sha256(b"user1@example.com").hexdigest()],
        "lead_ids": [one],
    }
    assert result.metrics["sent_with_email"] == 2
    assert result.metrics["invalid_email"] == 1
    assert result.metrics["leads_not_found"] == 1
    assert result.metrics["platform_received"] == 2
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths == [
        ("POST", "/identity/oauth/token"),
        ("GET", "/rest/v1/leads.json"),
        ("POST", f"/rest/v1/lists/{LIST}/leads.json"),
    ]
    assert fake.requests[-1].query["id"] == [str(one), str(two)]
    assert fake.violations == []


def test_remove_members_absent_leads_count_as_done(fake: MarketoSandbox) -> None:
    one = fake.add_lead("user1@example.com")
    fake.add_lead("user2@example.com")
    c = client(fake)
    c.send([rec(1)], CTX)
    result = c.send([rec(1, Operation.REMOVE), rec(2, Operation.REMOVE), rec(3, Operation.REMOVE)], CTX)
    assert set(outcomes(result).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.members(LIST) == set()
    assert fake.requests[-1].method == "DELETE"
    statuses = {r.record_id: r.response for r in result.results}
    assert statuses["r1"] == {"statuses": {str(one): "removed"}}
    assert statuses["r2"] and "1015" in next(iter(statuses["r2"]["statuses"].values()))


def test_token_refresh_on_602(fake: MarketoSandbox) -> None:
    fake.add_lead("user1@example.com")
    c = client(fake)
    c.send([rec(1, Operation.REMOVE)], CTX)
    fake.expire_tokens()
    result = c.send([rec(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert result.metrics["token_refreshes"] == 1
    assert fake.tokens_issued == 2
    assert c.token_fetches == 2


def test_token_refresh_on_601(fake: MarketoSandbox) -> None:
    fake.add_lead("user1@example.com")
    c = client(fake)
    c.send([rec(1, Operation.REMOVE)], CTX)
    fake.revoke_tokens()
    assert outcomes(c.send([rec(1)], CTX)) == {"r1": Outcome.ACKNOWLEDGED}
    assert fake.tokens_issued == 2


def test_token_is_fetched_again_before_it_expires(fake: MarketoSandbox) -> None:
    now = [0.0]
    c = client(fake, clock=lambda: now[0])
    c.send([rec(1, Operation.REMOVE)], CTX)
    now[0] = 3599 - 30  # within the safety margin of the token's lifetime
    c.send([rec(1, Operation.REMOVE)], CTX)
    assert fake.tokens_issued == 2


@pytest.mark.parametrize("code", ["606", "615"])
def test_rate_and_concurrency_errors_in_a_200_are_backed_off(fake: MarketoSandbox, code: str) -> None:
    fake.add_lead("user1@example.com")
    fake.codes_next(2, code)
    sleeps = Sleeps()
    result = client(fake, sleeps).send([rec(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert len(sleeps) == 2
    assert result.metrics["http_retries"] == 2


def test_rate_limit_exhausted_defers_to_next_run(fake: MarketoSandbox) -> None:
    fake.codes_next(10, "606")
    result = client(fake).send([rec(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.RETRY}
    assert "606" in result.results[0].reason


def test_lookups_of_at_most_300_values_and_long_uris_as_post(fake: MarketoSandbox) -> None:
    records = [rec(i, emails=[f"a-rather-long-address-number-{i}@subdomain.example.com"]) for i in range(300)]
    for r in records[:10]:
        fake.add_lead(r.payload["identifiers"]["email"][0])
    records.append(rec(300, emails=["extra@example.com", "another@example.com"]))
    result = client(fake).send(records, CTX)
    lookups = [r for r in fake.requests if r.path == "/rest/v1/leads.json"]
    assert [r.method for r in lookups] == ["POST", "GET"]
    assert lookups[0].query["_method"] == ["GET"]
    assert sum(outcomes(result)[r.record_id] is Outcome.ACKNOWLEDGED for r in records) == 10
    assert fake.violations == []


def test_window_limiter_keeps_100_calls_in_any_20_seconds() -> None:
    now = [0.0]
    calls: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = WindowLimiter(100, 20.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(250):
        limiter.acquire()
        calls.append(now[0])
        now[0] += 0.01
    assert max(sum(1 for t in calls if start <= t < start + 20.0) for start in calls) == 100
    assert calls[100] >= 20.0 and calls[200] >= 40.0


def test_registry_builds_the_client(fake: MarketoSandbox) -> None:
    destination = MarketoDestination.model_validate(
        {
            "id": "marketo",
            "type": "marketo_static_lists",
            "settings": {
                "base_url": fake.url,
                "client_id": {"env": "MARKETO_TEST_ID"},
                "client_secret": {"env": "MARKETO_TEST_SECRET"},
            },
        }
    )
    assert isinstance(build_client(destination), MarketoClient)
