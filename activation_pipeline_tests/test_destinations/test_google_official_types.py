"""Issue #11: Google request bodies parse strictly into the official Data Manager types; the fake accepts what
Google's own client library sends; incomplete addresses are counted; consent goes per member."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from activation_pipeline.destinations.base import BatchContext, Operation, OutboundRecord, Outcome
from activation_pipeline.destinations.google_ads_remarketing_lists.client import GoogleAdsClient
from activation_pipeline.destinations.google_ads_remarketing_lists.server import GoogleAdsSandbox
from activation_pipeline.destinations.google_ads_remarketing_lists.settings import GoogleAdsDestination
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy

datamanager = pytest.importorskip("google.ads.datamanager_v1")
json_format = pytest.importorskip("google.protobuf.json_format")

TOKEN = "google-official-token"
LIST = "7654321"
CTX = BatchContext("aud.vip.google", "sync_1", connection_settings={"user_list_id": LIST})


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[GoogleAdsSandbox]:
    monkeypatch.setenv("GOOGLE_OFFICIAL_TOKEN", TOKEN)
    with GoogleAdsSandbox(TOKEN) as server:
        yield server


def client(fake: GoogleAdsSandbox, **settings: Any) -> GoogleAdsClient:
    model = GoogleAdsDestination.model_validate(
        {
            "id": "google_ads",
            "type": "google_ads_remarketing_lists",
            "settings": {
                "operating_account_id": "123-456-7890",
                "login_account_id": "111-222-3333",
                "access_token": {"env": "GOOGLE_OFFICIAL_TOKEN"},
                "base_url": fake.url,
                "terms_of_service_accepted": True,
                **settings,
            },
        }
    )
    return GoogleAdsClient(model, ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=2)))


def record(i: int, op: Operation = Operation.ADD, **payload: Any) -> OutboundRecord:
    return OutboundRecord(f"r{i}", f"p{i}", op, payload)


FULL = {
    "identifiers": {"email": ["Jane.Doe@gmail.com"], "phone": ["+44 7911 123456"]},
    "traits": {
        "firstName": "Jane",
        "lastName": "Doe",
        "address.country": "United Kingdom",
        "address.postalCode": "SW1A 1AA",
    },
    "consent": {"ad_user_data": "granted", "ad_personalization": "denied"},
}


def _strict(body: dict[str, Any], message: Any) -> Any:
    """Parse a JSON body into an official message, refusing unknown fields and bad enum values."""
    return json_format.Parse(json.dumps(body), message.pb(message()), ignore_unknown_fields=False)


@pytest.mark.parametrize("encoding", ["HEX", "BASE64"])
def test_every_request_body_parses_strictly_into_the_official_types(
    fake: GoogleAdsSandbox, encoding: str
) -> None:
    c = client(fake, encoding=encoding)
    records = [
        record(1, **FULL),
        record(2, identifiers={"ios.idfa": ["AB1234CD-1234-4321-ABCD-1234567890AB"]}),
        record(3, identifiers={"crm_id": ["x"]}, traits={"externalId": "crm-3"}),
        record(4, Operation.REMOVE, identifiers={"email": ["old@example.com"]}),
    ]
    result = c.send(records, CTX)
    assert {r.outcome for r in result.results} == {Outcome.ACKNOWLEDGED}
    bodies = [(r.path, r.json()) for r in fake.requests]
    assert len(bodies) == 4  # user data, mobile data, user id data (one data type a request), one remove
    for path, body in bodies:
        kind = (
            datamanager.IngestAudienceMembersRequest
            if path.endswith(":ingest")
            else datamanager.RemoveAudienceMembersRequest
        )
        parsed = _strict(body, kind)
        assert parsed.encoding == datamanager.Encoding[encoding].value
        assert len(parsed.destinations) == 1 and parsed.destinations[0].product_destination_id == LIST
    ingest = next(b for p, b in bodies if p.endswith(":ingest") and "userData" in b["audienceMembers"][0])
    parsed = _strict(ingest, datamanager.IngestAudienceMembersRequest)
    member = parsed.audience_members[0]
    assert member.consent.ad_user_data == datamanager.ConsentStatus.CONSENT_GRANTED.value
    assert member.consent.ad_personalization == datamanager.ConsentStatus.CONSENT_DENIED.value
    kinds = [i.WhichOneof("identifier") for i in member.user_data.user_identifiers]
    assert kinds == ["email_address", "phone_number", "address"]
    address = member.user_data.user_identifiers[2].address
    assert (address.region_code, address.postal_code) == ("GB", "SW1A 1AA")
    assert fake.violations == []


def test_incomplete_addresses_are_counted(fake: GoogleAdsSandbox) -> None:
    partial = {"identifiers": {"email": ["a@example.com"]}, "traits": {"firstName": "A", "lastName": "B"}}
    result = client(fake).send([record(1, **partial), record(2, **FULL)], CTX)
    assert result.metrics["incomplete_address"] == 1
    sent = {r.record_id: r.sent for r in result.results}
    assert sent["r1"] is not None and "address.regionCode" not in sent["r1"]["keys"]
    assert sent["r2"] is not None and sent["r2"]["keys"]["address.regionCode"] == ["GB"]


def test_fake_accepts_the_official_client_library(fake: GoogleAdsSandbox) -> None:
    credentials = pytest.importorskip("google.oauth2.credentials")
    official = datamanager.IngestionServiceClient(
        credentials=credentials.Credentials(token=TOKEN),
        transport="rest",
        client_options={"api_endpoint": fake.url},
    )
    destination = datamanager.Destination(
        operating_account=datamanager.ProductAccount(
            account_type=datamanager.ProductAccount.AccountType.GOOGLE_ADS, account_id="1234567890"
        ),
        product_destination_id=LIST,
    )
    member = datamanager.AudienceMember(
        user_data=datamanager.UserData(
            user_identifiers=[datamanager.UserIdentifier(email_address=sha("jane@example.com"))]
        ),
        consent=datamanager.Consent(
            ad_user_data=datamanager.ConsentStatus.CONSENT_GRANTED,
            ad_personalization=datamanager.ConsentStatus.CONSENT_GRANTED,
        ),
    )
    official.ingest_audience_members(
        request=datamanager.IngestAudienceMembersRequest(
            destinations=[destination],
            audience_members=[member],
            encoding=datamanager.Encoding.HEX,
            terms_of_service=datamanager.TermsOfService(
                customer_match_terms_of_service_status=datamanager.TermsOfServiceStatus.ACCEPTED
            ),
        )
    )
    (sent,) = fake.requests
    assert "enum-encoding=int" in "&".join(f"{k}={v}" for k, vs in sent.query.items() for v in vs)
    assert sent.json()["encoding"] == 1  # the client writes enums as numbers
    assert fake.members(LIST)["emailAddress"] == {sha("jane@example.com")}
    official.remove_audience_members(
        request=datamanager.RemoveAudienceMembersRequest(
            destinations=[destination], audience_members=[member], encoding=datamanager.Encoding.HEX
        )
    )
    assert fake.members(LIST)["emailAddress"] == set()
    assert fake.violations == []


def test_fake_reads_bodies_as_proto3_json_does(fake: GoogleAdsSandbox) -> None:
    """snake_case field names and enum numbers are what proto3 JSON parsing accepts, so the fake accepts them."""
    import requests

    body = {
        "destinations": [
            {
                "operating_account": {"account_type": 1, "account_id": "1234567890"},
                "product_destination_id": LIST,
            }
        ],
        "audience_members": [
            {
                "user_data": {"user_identifiers": [{"email_address": sha("a@example.com")}]},
                "consent": {"ad_user_data": 1},
            }
        ],
        "encoding": 1,
        "terms_of_service": {"customer_match_terms_of_service_status": 1},
    }
    answer = requests.post(
        f"{fake.url}/v1/audienceMembers:ingest",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    assert fake.members(LIST)["emailAddress"] == {sha("a@example.com")}
    body["encoding"] = 7  # no such enum number
    refused = requests.post(
        f"{fake.url}/v1/audienceMembers:ingest",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert refused.status_code == 400
