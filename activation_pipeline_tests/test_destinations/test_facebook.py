"""Facebook Custom Audiences client against the fake Marketing API over real HTTP."""

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.facebook_custom_audiences.client import FacebookClient, session_id_for
from activation_pipeline.destinations.facebook_custom_audiences.rules import FACEBOOK_SCHEMA
from activation_pipeline.destinations.facebook_custom_audiences.server import FacebookSandbox
from activation_pipeline.destinations.facebook_custom_audiences.settings import FacebookDestination
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client

TOKEN = "meta-test-token"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FacebookSandbox]:
    monkeypatch.setenv("META_TEST_TOKEN", TOKEN)
    with FacebookSandbox(TOKEN, api_version="v24.0") as server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake: FacebookSandbox, sleeps: Sleeps | None = None, **kwargs: Any) -> FacebookClient:
    destination = FacebookDestination.model_validate(
        {
            "id": "meta",
            "type": "facebook_custom_audiences",
            "settings": {
                "ad_account_id": "act_1234567890",
                "access_token": {"env": "META_TEST_TOKEN"},
                "base_url": fake.url,
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return FacebookClient(destination, options, **kwargs)


def rec(i: int, op: Operation = Operation.ADD, **identifiers: Any) -> OutboundRecord:
    ids = identifiers or {"email": [f"  User{i}@Example.COM "]}
    return OutboundRecord(f"r{i}", f"p{i}", op, {"identifiers": ids, "traits": {}})


def context(audience_id: str, seq: int = 1, count: int = 1, total: int | None = None) -> BatchContext:
    return BatchContext("aud.vip.meta", "sync_1", seq, count, total, {"audience_id": audience_id})


def uploads(fake: FacebookSandbox) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/users")]


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_add_and_remove_with_meta_normalisation(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("VIP")
    c = client(fake)
    records = [
        OutboundRecord(
            "a",
            "p1",
            Operation.ADD,
            {
                "identifiers": {
                    "email": [" Jane.Doe+news@GMAIL.com "],
                    "phone": ["(201) 555-0123"],
                    "context.device.advertisingId": ["AB1234CD-1234-4321-ABCD-1234567890AB"],
                },
                "traits": {
                    "firstName": "Jane",
                    "lastName": "O'Doe",
                    "address.country": "United States",
                    "plan": "gold",  # not a Facebook key: never sent
                },
            },
        ),
        OutboundRecord("b", "p2", Operation.ADD, {"identifiers": {"phone": ["020 7946 0123"]}, "traits": {}}),
        rec(3),
    ]
    result = c.send(records, context(audience))
    assert outcomes(result) == {"a": Outcome.ACKNOWLEDGED, "b": Outcome.FAILED, "r3": Outcome.ACKNOWLEDGED}
    members = fake.members(audience)
    # Meta keeps gmail dots and +tags; phone digits with country code, no '+'
    assert members["EMAIL"] == {sha("jane.doe+news@gmail.com"), sha("user3@example.com")}
    assert members["PHONE"] == {sha("12015550123")}
    assert members["MADID"] == {"ab1234cd-1234-4321-abcd-1234567890ab"}
    assert members["LN"] == {sha("odoe")}
    assert members["COUNTRY"] == {sha("us")}
    upload = fake.requests[-1].json()
    assert upload["payload"]["schema"] == list(FACEBOOK_SCHEMA)
    assert upload["session"]["batch_seq"] == 1 and upload["session"]["last_batch_flag"] is True
    assert result.metrics["sent_with_email"] == 2
    assert result.metrics["sent_with_phone"] == 1
    assert result.metrics["sent_with_mobile_id"] == 1
    assert result.metrics["invalid_phone"] == 1
    assert result.metrics["platform_received"] == 2
    assert result.metrics["no_usable_identifier"] == 1
    assert result.metrics["unmapped_values"] == 1
    sent = next(r.sent for r in result.results if r.record_id == "a")
    assert sent is not None and sent["keys"]["EMAIL"] == [sha("jane.doe+news@gmail.com")]

    removed = c.send([rec(3, Operation.REMOVE)], context(audience))
    assert outcomes(removed) == {"r3": Outcome.ACKNOWLEDGED}
    assert fake.requests[-1].method == "DELETE"
    assert fake.members(audience)["EMAIL"] == {sha("jane.doe+news@gmail.com")}
    assert fake.violations == []


def test_already_hashed_values_are_sent_once_not_rehashed(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Pre-hashed")
    digest = sha("jane@example.com")
    result = client(fake).send(
        [rec(1, email=[digest.upper()], phone=[sha("12015550123")])], context(audience)
    )
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert fake.members(audience)["EMAIL"] == {digest}
    assert fake.members(audience)["PHONE"] == {sha("12015550123")}
    assert result.metrics["prehashed_values"] == 2


def test_session_over_three_requests(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Big")
    c = client(fake)
    records = [rec(i) for i in range(25_000)]
    batches = [records[0:10_000], records[10_000:20_000], records[20_000:]]
    for seq, batch in enumerate(batches, start=1):
        result = c.send(batch, context(audience, seq, 3, 25_000))
        assert all(r.outcome is Outcome.ACKNOWLEDGED for r in result.results)
    sessions = [r.json()["session"] for r in uploads(fake)]
    assert [len(r.json()["payload"]["data"]) for r in uploads(fake)] == [10_000, 10_000, 5_000]
    assert [s["batch_seq"] for s in sessions] == [1, 2, 3]
    assert [s["last_batch_flag"] for s in sessions] == [False, False, True]
    assert {s["session_id"] for s in sessions} == {
        session_id_for("sync_1", "aud.vip.meta", "add", c._instance)
    }
    assert {s["estimated_num_total"] for s in sessions} == {25_000}
    assert len(fake.members(audience)["EMAIL"]) == 25_000
    assert fake.violations == []


def test_rows_split_at_ten_thousand_within_a_batch(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Two emails each")
    records = [rec(i, email=[f"a{i}@example.com", f"b{i}@example.com"]) for i in range(6_000)]
    result = client(fake).send(records, context(audience))
    assert all(r.outcome is Outcome.ACKNOWLEDGED for r in result.results)
    bodies = [r.json() for r in uploads(fake)]
    assert [len(b["payload"]["data"]) for b in bodies] == [10_000, 2_000]
    assert [(b["session"]["batch_seq"], b["session"]["last_batch_flag"]) for b in bodies] == [
        (1, False),
        (2, True),
    ]
    assert result.metrics["rows_sent"] == 12_000
    assert fake.violations == []


@pytest.mark.parametrize("code", [4, 17, 613, 80003])
def test_throttle_codes_in_the_body_are_backed_off(fake: FacebookSandbox, code: int) -> None:
    audience = fake.create_audience("Throttled")
    fake.throttle_next(2, code)
    sleeps = Sleeps()
    result = client(fake, sleeps).send([rec(1)], context(audience))
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert [r.status for r in uploads(fake)] == [400, 400, 200]
    assert len(sleeps) == 2
    assert result.metrics["http_retries"] == 2


def test_throttle_waits_for_the_usage_header_then_defers(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Blocked")
    fake.throttle_next(10, 80003, regain_minutes=1)
    sleeps = Sleeps()
    result = client(fake, sleeps).send([rec(1)], context(audience))
    assert outcomes(result) == {"r1": Outcome.RETRY}
    assert sleeps and min(sleeps) >= 60
    assert "80003" in result.results[0].reason


def test_permanent_errors_fail_the_records(fake: FacebookSandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    audience = fake.create_audience("Wrong token")
    monkeypatch.setenv("META_TEST_TOKEN", "expired")
    result = client(fake).send([rec(1)], context(audience))
    assert outcomes(result) == {"r1": Outcome.FAILED}
    assert "190" in result.results[0].reason


def test_invalid_entries_reported_by_meta_are_counted(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Invalid")
    fake.invalid_values.add(sha("user2@example.com"))
    result = client(fake).send([rec(1), rec(2)], context(audience))
    assert result.metrics["platform_received"] == 2
    assert result.metrics["platform_invalid"] == 1


def test_audience_is_created_once_and_found_by_name(fake: FacebookSandbox) -> None:
    settings = {"audience_name": "Acme - VIP"}
    first = client(fake).send([rec(1)], BatchContext("aud.vip.meta", "sync_1", connection_settings=settings))
    second = client(fake).send([rec(2)], BatchContext("aud.vip.meta", "sync_2", connection_settings=settings))
    assert len(fake.audiences) == 1
    (audience,) = fake.audiences.values()
    assert audience.name == "Acme - VIP"
    assert audience.customer_file_source == "BOTH_USER_AND_PARTNER_PROVIDED"
    assert first.results[0].sent and second.results[0].sent
    assert (
        first.results[0].sent["audience_id"] == second.results[0].sent["audience_id"] == audience.audience_id
    )
    assert len(fake.members(audience.audience_id)["EMAIL"]) == 2


def test_registry_builds_the_client(fake: FacebookSandbox) -> None:
    destination = FacebookDestination.model_validate(
        {
            "id": "meta_ads",
            "type": "facebook_custom_audiences",
            "settings": {
                "ad_account_id": "123",
                "access_token": {"env": "META_TEST_TOKEN"},
                "base_url": fake.url,
            },
        }
    )
    assert isinstance(build_client(destination), FacebookClient)
