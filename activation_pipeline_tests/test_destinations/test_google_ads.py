"""Google Ads Customer Match (Data Manager API) client against the fake over real HTTP."""

import base64
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.google_ads_remarketing_lists.client import GoogleAdsClient
from activation_pipeline.destinations.google_ads_remarketing_lists.server import GoogleAdsSandbox
from activation_pipeline.destinations.google_ads_remarketing_lists.settings import GoogleAdsDestination
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import CATALOGUE, build_client

TOKEN = "google-test-token"
LIST = "7654321"
IDFA = "AB1234CD-1234-4321-ABCD-1234567890AB"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[GoogleAdsSandbox]:
    monkeypatch.setenv("GOOGLE_TEST_TOKEN", TOKEN)
    with GoogleAdsSandbox(TOKEN) as server:
        yield server


def client(fake: GoogleAdsSandbox, sleeps: Sleeps | None = None, **settings: Any) -> GoogleAdsClient:
    model = GoogleAdsDestination.model_validate(
        {
            "id": "google_ads",
            "type": "google_ads_remarketing_lists",
            "settings": {
                "operating_account_id": "123-456-7890",
                "access_token": {"env": "GOOGLE_TEST_TOKEN"},
                "base_url": fake.url,
                "terms_of_service_accepted": True,
                **settings,
            },
        }
    )
    options = ClientOptions(
        sleep=sleeps if sleeps is not None else Sleeps(), retry=RetryPolicy(max_attempts=4)
    )
    return GoogleAdsClient(model, options)


CTX = BatchContext("aud.vip.google", "sync_1", connection_settings={"user_list_id": LIST})


def rec(
    i: int,
    op: Operation = Operation.ADD,
    traits: dict[str, Any] | None = None,
    ids: dict[str, list[str]] | None = None,
    **more: list[str],
) -> OutboundRecord:
    identifiers = {**(ids or {}), **more} or {"email": [f"user{i}@example.com"]}
    return OutboundRecord(f"r{i}", f"p{i}", op, {"identifiers": identifiers, "traits": traits or {}})


def outcomes(result: Any) -> dict[str, Outcome]:
    return {r.record_id: r.outcome for r in result.results}


def test_ingest_with_google_formatting(fake: GoogleAdsSandbox) -> None:
    records = [
        rec(
            1,
            email=[" John.Doe+Promo@GMAIL.com ", "J.Doe@Example.com"],
            phone=["(201) 555-0123"],
            traits={
                "firstName": "Mrs. Jane",
                "lastName": "Doe Jr.",
                "address.country": "United States",
                "address.postalCode": "94045-1234",
            },
        ),
        rec(2, email=["nope"], phone=["0044 20 7946 0123"]),
        rec(3, email=["bad"]),
    ]
    result = client(fake).send(records, CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED, "r2": Outcome.ACKNOWLEDGED, "r3": Outcome.FAILED}
    members = fake.members(LIST)
    assert members["emailAddress"] == {sha("johndoe@gmail.com"), sha("j.doe@example.com")}
    assert members["phoneNumber"] == {sha("+12015550123"), sha("+442079460123")}
    assert members["givenName"] == {sha("jane")}
    assert members["familyName"] == {sha("doe")}
    assert members["regionCode"] == {"US"}
    assert members["postalCode"] == {"94045"}
    body = fake.requests[-1].json()
    assert fake.requests[-1].path == "/v1/audienceMembers:ingest"
    assert body["destinations"] == [
        {
            "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
            "productDestinationId": LIST,
        }
    ]
    assert body["consent"] == {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
    assert body["termsOfService"] == {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
    assert body["encoding"] == "HEX"
    assert result.metrics["sent_with_email"] == 1
    assert result.metrics["sent_with_phone"] == 2
    assert result.metrics["invalid_email"] == 2
    assert result.metrics["platform_received"] == 2
    assert fake.violations == []


def test_remove_uses_remove_without_consent(fake: GoogleAdsSandbox) -> None:
    c = client(fake)
    c.send([rec(1), rec(2)], CTX)
    result = c.send([rec(1, Operation.REMOVE)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert fake.requests[-1].path == "/v1/audienceMembers:remove"
    assert "consent" not in fake.requests[-1].json()
    assert fake.members(LIST)["emailAddress"] == {sha("user2@example.com")}
    assert fake.violations == []


def test_base64_encoding_and_prehashed_hex_input(fake: GoogleAdsSandbox) -> None:
    digest = sha("pre@hashed.com")
    result = client(fake, encoding="BASE64").send([rec(1), rec(2, email=[digest.upper()])], CTX)
    assert all(o is Outcome.ACKNOWLEDGED for o in outcomes(result).values())
    sent = fake.requests[-1].json()["audienceMembers"][1]["userData"]["userIdentifiers"][0]["emailAddress"]
    assert sent == base64.b64encode(bytes.fromhex(digest)).decode()
    assert fake.members(LIST)["emailAddress"] == {sha("user1@example.com"), digest}
    assert fake.violations == []


def test_data_types_go_in_separate_requests(fake: GoogleAdsSandbox) -> None:
    records = [
        rec(1),
        rec(2, ids={"context.device.advertisingId": [IDFA]}),
        rec(3, ids={"email": ["x@example.com"], "context.device.advertisingId": [IDFA.lower()]}),
    ]
    result = client(fake).send(records, CTX)
    assert all(o is Outcome.ACKNOWLEDGED for o in outcomes(result).values())
    kinds = [{next(iter(m)) for m in r.json()["audienceMembers"]} for r in fake.requests]
    assert kinds == [{"userData"}, {"mobileData"}]
    assert fake.members(LIST)["mobileIds"] == {IDFA}
    assert result.metrics["sent_with_mobile_id"] == 1
    assert fake.violations == []


def test_resource_exhausted_waits_for_retry_delay(fake: GoogleAdsSandbox) -> None:
    fake.exhaust_next(2, retry_delay="3.5s")
    sleeps = Sleeps()
    result = client(fake, sleeps).send([rec(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED}
    assert [r.status for r in fake.requests] == [429, 429, 200]
    assert len(sleeps) == 2 and min(sleeps) >= 3.5


def test_invalid_member_fails_alone_and_the_rest_is_sent_again(fake: GoogleAdsSandbox) -> None:
    fake.reject_values.add(sha("user2@example.com"))
    result = client(fake).send([rec(1), rec(2), rec(3)], CTX)
    assert outcomes(result) == {"r1": Outcome.ACKNOWLEDGED, "r2": Outcome.FAILED, "r3": Outcome.ACKNOWLEDGED}
    reason = next(r.reason for r in result.results if r.record_id == "r2")
    assert "INVALID_AUDIENCE_MEMBER" in reason
    assert [r.status for r in fake.requests] == [400, 200]
    assert fake.members(LIST)["emailAddress"] == {sha("user1@example.com"), sha("user3@example.com")}
    assert result.metrics["platform_invalid"] == 1
    assert result.metrics["platform_received"] == 2


def test_terms_not_accepted_fail_without_a_call(fake: GoogleAdsSandbox) -> None:
    result = client(fake, terms_of_service_accepted=False).send([rec(1)], CTX)
    assert outcomes(result) == {"r1": Outcome.FAILED}
    assert "terms of service" in result.results[0].reason
    assert fake.requests == []


def test_chunks_of_at_most_max_members(fake: GoogleAdsSandbox) -> None:
    model = GoogleAdsDestination.model_validate(
        {"id": "google_ads", "type": "google_ads_remarketing_lists",
         "settings": {"operating_account_id": "1234567890", "access_token": {"env": "GOOGLE_TEST_TOKEN"},
                      "base_url": fake.url, "terms_of_service_accepted": True}}
    )  # fmt: skip
    c = GoogleAdsClient(model, ClientOptions(sleep=Sleeps()), max_members=3)
    result = c.send([rec(i) for i in range(7)], CTX)
    assert len(result.results) == 7
    assert [len(r.json()["audienceMembers"]) for r in fake.requests] == [3, 3, 1]


def test_ten_thousand_members_in_one_request(fake: GoogleAdsSandbox) -> None:
    result = client(fake).send([rec(i) for i in range(10_000)], CTX)
    assert all(r.outcome is Outcome.ACKNOWLEDGED for r in result.results)
    assert len(fake.requests) == 1
    assert len(fake.members(LIST)["emailAddress"]) == 10_000


def test_catalogue_default_schedule_is_six_hourly() -> None:
    assert CATALOGUE["google_ads_remarketing_lists"].default_schedule == "0 */6 * * *"


def test_registry_builds_the_client(fake: GoogleAdsSandbox) -> None:
    destination = GoogleAdsDestination.model_validate(
        {
            "id": "google_ads",
            "type": "google_ads_remarketing_lists",
            "settings": {
                "operating_account_id": "123-456-7890",
                "access_token": {"env": "GOOGLE_TEST_TOKEN"},
            },
        }
    )
    assert isinstance(build_client(destination), GoogleAdsClient)
