"""Mailchimp client against the fake Marketing API over real HTTP: members by hash, tags, batches, limits."""

from collections.abc import Iterator

import pytest
import requests

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.base import BatchContext, Outcome
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.mailchimp.client import MailchimpClient, base_url_for, subscriber_hash
from activation_pipeline.destinations.mailchimp.server import MailchimpSandbox
from activation_pipeline.destinations.mailchimp.settings import MailchimpDestination
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.destinations.spec import CallCounts
from activation_pipeline_tests.test_destinations.contact_messages import (
    Sleeps,
    identify,
    outcomes,
    reasons,
    track,
)

LIST = "a1b2c3"
KEY = "0123456789abcdef-us6"
CTX = BatchContext("audience.lapsed_customers.mailchimp", "sync_1", connection_settings={"tag": "Lapsed"})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailchimpSandbox]:
    monkeypatch.setenv("MAILCHIMP_TEST_KEY", KEY)
    with MailchimpSandbox(api_key=KEY) as server:
        server.create_list(LIST, "LTV")
        yield server


def client(url: str, sleeps: Sleeps | None = None, **settings: object) -> MailchimpClient:
    destination = MailchimpDestination.model_validate(
        {
            "id": "mailchimp",
            "type": "mailchimp",
            "settings": {
                "base_url": url,
                "api_key": {"env": "MAILCHIMP_TEST_KEY"},
                "list_id": LIST,
                **settings,
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=3)
    )
    return MailchimpClient(destination, options)


def test_subscriber_hash_and_data_centre() -> None:
    """The member id is the MD5 of the lower-cased email; the key's suffix names the data centre."""
    assert subscriber_hash(" Urist.McVankab@Freddie.com") == "844ea19e44e010669b36b20079b952f7"
    assert base_url_for(KEY) == "https://us6.api.mailchimp.com"


@pytest.mark.parametrize("batched", [True, False])
def test_members_upserted_and_tagged_then_untagged(fake: MailchimpSandbox, batched: bool) -> None:
    """Entered: PUT by hash with merge fields and the tag active; exited: the tag inactive; same either way."""
    mailchimp = client(fake.url, batch_operations=batched)
    first = mailchimp.send([identify(1, FNAME="Ann"), identify(2, email="User2@Example.com")], CTX)
    assert set(outcomes(first).values()) == {Outcome.ACKNOWLEDGED}
    assert fake.tagged(LIST, "Lapsed") == {"user1@example.com", "user2@example.com"}
    member = fake.member(LIST, "user1@example.com")
    assert (
        member is not None and member["merge_fields"] == {"FNAME": "Ann"} and member["status"] == "subscribed"
    )
    second = mailchimp.send([identify(2, member=False), identify(3, member=False)], CTX)
    assert outcomes(second) == {"r2": Outcome.ACKNOWLEDGED, "r3": Outcome.ACKNOWLEDGED}
    assert fake.tagged(LIST, "Lapsed") == {"user1@example.com"}
    assert fake.member(LIST, "user3@example.com") is None  # a leaver is never created
    paths = {r.path for r in fake.requests}
    if batched:
        assert "/3.0/batches" in paths and not any("/members/" in p for p in paths)
    else:
        assert f"/3.0/lists/{LIST}/members/{subscriber_hash('user1@example.com')}" in paths


def test_an_existing_members_status_is_never_changed(fake: MailchimpSandbox) -> None:
    """status_if_new only: someone who unsubscribed stays unsubscribed."""
    mailchimp = client(fake.url)
    mailchimp.send([identify(1)], CTX)
    fake.members[LIST][subscriber_hash("user1@example.com")]["status"] = "unsubscribed"
    mailchimp.send([identify(1, FNAME="Ann")], CTX)
    member = fake.member(LIST, "user1@example.com")
    assert member is not None and member["status"] == "unsubscribed"


def test_auth_is_basic_with_the_key(fake: MailchimpSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong key is a terminal 401 for the batch."""
    monkeypatch.setenv("MAILCHIMP_TEST_KEY", "wrong-us6")
    result = client(fake.url).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED} and "401" in reasons(result)["r1"]


def test_per_member_errors_fail_only_their_record(fake: MailchimpSandbox) -> None:
    """A fake-looking address fails its record (from the batch archive); no email or a track fails unsent."""
    fake.reject_items(lambda body: body["email_address"] == "user2@example.com", "looks fake or invalid")
    result = client(fake.url).send([identify(1), identify(2), identify(3, email="nope"), track(4)], CTX)
    assert outcomes(result) == {
        "r1": Outcome.ACKNOWLEDGED,
        "r2": Outcome.FAILED,
        "r3": Outcome.FAILED,
        "t4": Outcome.FAILED,
    }
    assert "Invalid Resource" in reasons(result)["r2"]


def test_traits_go_to_their_merge_field(fake: MailchimpSandbox) -> None:
    """A computed trait connection writes its value to the connection's merge field, with no tag."""
    record = identify(1, key="total_revenue_180d", member=612.5, audience=False)
    result = client(fake.url, batch_operations=False).send(
        [record], BatchContext("c", "s", connection_settings={"merge_field": "LTV"})
    )
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    member = fake.member(LIST, "user1@example.com")
    assert member is not None and member["merge_fields"] == {"LTV": 612.5} and member["tags"] == []


def test_too_many_connections_is_retried(fake: MailchimpSandbox) -> None:
    """A 429 (too many simultaneous connections) is transient: retried, then acknowledged."""
    fake.fail_next(1, 429, body={"title": "Too Many Requests", "status": 429})
    sleeps = Sleeps()
    result = client(fake.url, sleeps, batch_operations=False).send([identify(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert len(sleeps) == 1 and result.metrics["http_retries"] == 1.0


def test_pending_batches_are_polled_and_a_slow_one_left_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batches finish asynchronously: polls back off; past the wait budget the records stay `retry`."""
    monkeypatch.setenv("MAILCHIMP_TEST_KEY", KEY)
    with MailchimpSandbox(api_key=KEY, pending_polls=2, create_missing=True) as server:
        sleeps = Sleeps()
        assert outcomes(client(server.url, sleeps).send([identify(1)], CTX)) == {"r1": Outcome.ACKNOWLEDGED}
        assert sleeps == [1.0, 2.0]
        slow = client(server.url, batch_wait_seconds=2).send([identify(2)], CTX)
        assert outcomes(slow) == {"r2": Outcome.RETRY} and "did not finish" in reasons(slow)["r2"]


def test_fake_limits_and_archive_rules(fake: MailchimpSandbox) -> None:
    """The results archive refuses credentials (a pre-signed URL); the hash must match the email."""
    auth = ("any", KEY)
    path = f"{fake.url}/3.0/lists/{LIST}/members/{subscriber_hash('a@b.io')}"
    wrong = requests.put(
        path, json={"email_address": "c@b.io", "status_if_new": "subscribed"}, auth=auth, timeout=5
    )
    assert wrong.status_code == 400
    no_status = requests.put(path, json={"email_address": "a@b.io"}, auth=auth, timeout=5)
    assert no_status.status_code == 400
    batch = requests.post(
        f"{fake.url}/3.0/batches",
        json={"operations": [{"method": "PUT", "path": path[len(fake.url) + 4 :], "operation_id": "x",
                              "body": '{"email_address": "a@b.io", "status_if_new": "subscribed"}'}]},
        auth=auth,
        timeout=5,
    )  # fmt: skip
    status = requests.get(f"{fake.url}/3.0/batches/{batch.json()['id']}", auth=auth, timeout=5).json()
    assert status["status"] == "finished"
    assert requests.get(status["response_body_url"], auth=auth, timeout=5).status_code == 400
    assert requests.get(status["response_body_url"], timeout=5).status_code == 200


def test_dry_run_calls_are_the_requests_sent(fake: MailchimpSandbox) -> None:
    """Call by call: two for each member in the audience, one for a leaver; batched: three a batch."""
    records = [identify(1), identify(2), identify(3, member=False)]
    connection = Connection.model_validate(
        {"source": "audience:lapsed_customers", "destination": "mailchimp"}
    )
    counts = CallCounts(records=3, batches=1, adds=2, removes=1, updates=0)
    for batched, expected in ((False, 5), (True, 3)):
        mailchimp = client(fake.url, batch_operations=batched)
        destination = MailchimpDestination.model_validate(
            {"id": "mailchimp", "type": "mailchimp", "settings": {"api_key": {"env": "MAILCHIMP_TEST_KEY"},
             "list_id": LIST, "batch_operations": batched}}
        )  # fmt: skip
        before = len(fake.requests)
        mailchimp.send(records, CTX)
        assert len(fake.requests) - before == expected
        assert CATALOGUE["mailchimp"].calls_for(destination, connection, counts) == expected
