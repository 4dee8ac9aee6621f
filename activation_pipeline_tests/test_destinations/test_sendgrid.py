"""SendGrid Marketing Contacts client against the fake v3 API over real HTTP: lists, jobs, removals, limits."""

import time
from collections.abc import Iterator

import pytest
import requests

from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.sendgrid.client import SendGridClient
from activation_pipeline.destinations.sendgrid.server import SendGridSandbox
from activation_pipeline.destinations.sendgrid.settings import SendGridDestination
from activation_pipeline.sandbox.base import Fault, Reply
from activation_pipeline_tests.test_destinations.contact_messages import (
    Sleeps,
    identify,
    outcomes,
    reasons,
    track,
)

LIST = "a1b2c3d4-0000-4000-8000-000000000001"
CTX = BatchContext("audience.lapsed_customers.sendgrid", "sync_1", connection_settings={"list_id": LIST})
UPSERT = "/v3/marketing/contacts"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridSandbox]:
    monkeypatch.setenv("SENDGRID_TEST_KEY", "SG.test")
    with SendGridSandbox(api_key="SG.test") as server:
        server.create_list(LIST)
        server.define_custom_field("e1_T")
        yield server


def client(url: str, sleeps: Sleeps | None = None, **settings: object) -> SendGridClient:
    destination = SendGridDestination.model_validate(
        {
            "id": "sendgrid",
            "type": "sendgrid",
            "settings": {"base_url": url, "api_key": {"env": "SENDGRID_TEST_KEY"}, **settings},
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=3)
    )
    return SendGridClient(destination, options)


def test_entered_upserted_into_the_list_and_exited_removed(fake: SendGridSandbox) -> None:
    """PUT with list_ids adds; search by email then DELETE from the list removes; jobs are confirmed."""
    sendgrid = client(fake.url)
    first = sendgrid.send([identify(1, first_name="Ann", e1_T="gold"), identify(2), identify(3)], CTX)
    assert set(outcomes(first).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.members(LIST) == {"user1@example.com", "user2@example.com", "user3@example.com"}
    assert fake.contacts["user1@example.com"]["first_name"] == "Ann"
    assert fake.contacts["user1@example.com"]["custom_fields"] == {"e1_T": "gold"}
    assert first.metrics["jobs"] == 1.0
    job_id = next(iter(fake.jobs))
    assert [f"{r.method} {r.path}" for r in fake.requests] == [
        f"PUT {UPSERT}",
        f"GET /v3/marketing/contacts/imports/{job_id}",
    ]
    second = sendgrid.send([identify(2, member=False), identify(9, member=False)], CTX)
    assert outcomes(second) == {"r2": Outcome.ACKNOWLEDGED, "r9": Outcome.ACKNOWLEDGED}
    assert "nothing to remove" in reasons(second)["r9"]
    assert second.metrics["not_in_sendgrid"] == 1.0
    assert fake.members(LIST) == {"user1@example.com", "user3@example.com"}
    delete = fake.requests[-1]
    assert delete.method == "DELETE" and delete.query["contact_ids"] == [
        fake.contacts["user2@example.com"]["id"]
    ]


def test_nobody_found_to_remove_is_a_404_and_nothing_to_do(fake: SendGridSandbox) -> None:
    """The email search answers 404 when none is a contact: the removals are done (nobody is in the list)."""
    result = client(fake.url).send([identify(1, member=False)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert [r.status for r in fake.requests] == [404]


def test_auth_is_a_bearer_api_key(fake: SendGridSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key is a terminal 401."""
    monkeypatch.setenv("SENDGRID_TEST_KEY", "SG.wrong")
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED} and "HTTP 401" in reasons(result)["r1"]


def test_refused_contacts_fail_alone_and_the_rest_are_sent_again(fake: SendGridSandbox) -> None:
    """A 400 naming contacts[i] fails those records; the others go in a second request."""
    fake.reject_items(lambda c: c["email"] == "user2@example.com", "email is on a suppression list")
    result = client(fake.url).send([identify(1), identify(2), identify(3, email="bad"), track(4)], CTX)
    assert outcomes(result) == {
        "r1": Outcome.ACKNOWLEDGED,
        "r2": Outcome.FAILED,
        "r3": Outcome.FAILED,
        "t4": Outcome.FAILED,
    }
    assert "suppression" in reasons(result)["r2"]
    assert fake.members(LIST) == {"user1@example.com"}
    puts = [r for r in fake.requests if r.method == "PUT"]
    assert [r.status for r in puts] == [400, 202]
    assert [len(r.json()["contacts"]) for r in puts] == [2, 1]


def test_unknown_fields_and_lists_are_refused_as_sendgrid_does(fake: SendGridSandbox) -> None:
    """Only reserved fields and defined custom field ids; the list must exist."""
    auth = {"Authorization": "Bearer SG.test"}
    bad = {
        "list_ids": ["nope"],
        "contacts": [{"email": "a@x.io", "favourite": 1, "custom_fields": {"e9_N": 1}}],
    }
    answer = requests.put(fake.url + UPSERT, json=bad, headers=auth, timeout=5)
    assert answer.status_code == 400
    fields = {e["field"] for e in answer.json()["errors"]}
    assert fields == {"list_ids[0]", "contacts[0].favourite", "contacts[0].custom_fields.e9_N"}
    empty = requests.put(fake.url + UPSERT, json={"contacts": []}, headers=auth, timeout=5)
    assert empty.status_code == 400
    many = {"emails": [f"u{i}@x.io" for i in range(101)]}
    assert (
        requests.post(fake.url + UPSERT + "/search/emails", json=many, headers=auth, timeout=5).status_code
        == 400
    )


def test_throttle_waits_until_the_reset(fake: SendGridSandbox) -> None:
    """A 429 with X-RateLimit-Reset and no Retry-After waits until the reset, then succeeds."""
    sleeps = Sleeps()
    reset = str(int(time.time()) + 3)
    fake.fail_next(1, 429, headers={"X-RateLimit-Reset": reset, "X-RateLimit-Remaining": "0"})
    result = client(fake.url, sleeps).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert 1.5 < sleeps[0] <= 4.0


def test_fake_window_answers_429_with_rate_headers() -> None:
    """Past the window's calls the fake answers 429 with SendGrid's rate-limit headers."""
    with SendGridSandbox(api_key="k", calls_per_window=1) as server:
        auth = {"Authorization": "Bearer k"}
        first = requests.get(server.url + "/v3/marketing/contacts/imports/x", headers=auth, timeout=5)
        second = requests.get(server.url + "/v3/marketing/contacts/imports/x", headers=auth, timeout=5)
    assert (first.status_code, second.status_code) == (404, 429)
    assert (
        second.headers["X-RateLimit-Remaining"] == "0"
        and int(second.headers["X-RateLimit-Reset"]) > time.time()
    )


def test_pending_jobs_are_polled_and_a_slow_job_is_left_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upsert is asynchronous: pending polls back off; past the wait budget the records stay `retry`."""
    monkeypatch.setenv("SENDGRID_TEST_KEY", "SG.test")
    with SendGridSandbox(api_key="SG.test", pending_polls=2, create_missing=True) as server:
        sleeps = Sleeps()
        done = client(server.url, sleeps).send([identify(1)], CTX)
        assert outcomes(done) == {"r1": Outcome.ACKNOWLEDGED} and sleeps == [1.0, 2.0]
        slow = client(server.url, Sleeps(), job_wait_seconds=2).send([identify(2)], CTX)
        assert outcomes(slow) == {"r2": Outcome.RETRY} and "still pending" in reasons(slow)["r2"]


def test_server_errors_are_retried_then_left_for_the_next_run(fake: SendGridSandbox) -> None:
    """5xx is transient: retried within the policy, then `retry`."""
    fake.fail_next(3, 503)
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.RETRY}
    assert len(fake.requests) == 3


def test_refusals_in_every_round_end_after_three_requests(fake: SendGridSandbox) -> None:
    """A server refusing one contact in every answer: two resends, then the rest fail with the third answer."""
    refusal = Reply(400, {"errors": [{"field": "contacts[0].email", "message": "blocked"}]})
    fake.add_fault(Fault(refusal, lambda r: r.method == "PUT", 3))
    result = client(fake.url).send([identify(i) for i in range(1, 5)], CTX)
    assert set(outcomes(result).values()) == {Outcome.FAILED}
    why = reasons(result)
    assert why["r1"] == why["r2"] == "refused by SendGrid: blocked"
    assert why["r3"].startswith("HTTP 400") and why["r4"].startswith("HTTP 400")
    assert [len(r.json()["contacts"]) for r in fake.requests] == [4, 3, 2]
