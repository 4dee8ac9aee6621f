"""The fake Data Manager API validates requests like Google does and fails fast."""

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from activation_pipeline.destinations.google_ads_remarketing_lists.server import GoogleAdsSandbox

TOKEN = "sandbox-token"
H = {"Authorization": f"Bearer {TOKEN}"}
INGEST = "/v1/audienceMembers:ingest"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def fake() -> Iterator[GoogleAdsSandbox]:
    with GoogleAdsSandbox(TOKEN) as server:
        yield server


def body(*members: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    base = {
        "destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                          "productDestinationId": "555"}],
        "audienceMembers": list(members),
        "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_DENIED"},
        "encoding": "HEX",
        "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"},
    }  # fmt: skip
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def email(value: str) -> dict[str, Any]:
    return {"userData": {"userIdentifiers": [{"emailAddress": value}]}}


def post(fake: GoogleAdsSandbox, payload: Any, path: str = INGEST) -> requests.Response:
    return requests.post(f"{fake.url}{path}", json=payload, headers=H, timeout=5)


def reasons(answer: requests.Response) -> list[str]:
    details = answer.json()["error"]["details"]
    found = [d["reason"] for d in details if "reason" in d]
    found += [v["reason"] for d in details for v in d.get("fieldViolations", [])]
    return found


def test_consent_is_optional_on_the_request(fake: GoogleAdsSandbox) -> None:
    """As in the official request type: consent may be left out, or given per member instead."""
    member = {**email(sha("a@x.com")), "consent": {"adUserData": "CONSENT_GRANTED"}}
    assert post(fake, body(member, consent=None)).status_code == 200
    assert post(fake, body(email(sha("b@x.com")), consent=None)).status_code == 200


def test_ingest_and_remove(fake: GoogleAdsSandbox) -> None:
    answer = post(fake, body(email(sha("a@x.com")), email(sha("b@x.com"))))
    assert answer.status_code == 200 and "requestId" in answer.json()
    removal = body(email(sha("a@x.com")), consent=None, termsOfService=None)
    assert post(fake, removal, "/v1/audienceMembers:remove").status_code == 200
    assert fake.members("555")["emailAddress"] == {sha("b@x.com")}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (body(email(sha("a@x.com")), termsOfService=None), "TERMS_AND_CONDITIONS_NOT_SIGNED"),
        (body(email(sha("a@x.com")), consent={"adStorage": "CONSENT_GRANTED"}), "INVALID_ARGUMENT"),
        (body(email(sha("a@x.com")), consent={"adUserData": "YES"}), "INVALID_ENUM_VALUE"),
        (body(email(sha("a@x.com")), encoding=None), "INVALID_ENUM_VALUE"),
        (body(email(sha("a@x.com")), email("a@x.com")), "INVALID_SHA256_FORMAT"),
        (body(email(sha("a@x.com").upper())), "INVALID_SHA256_FORMAT"),
        (body(email(sha("a@x.com")), {"mobileData": {"mobileIds": ["AB1234CD-1234-4321-ABCD-1234567890AB"]}}),
         "MULTIPLE_DATA_TYPES_NOT_ALLOWED"),
        (body({"userData": {"userIdentifiers": [{"emailAddress": sha(str(i))} for i in range(11)]}}),
         "TOO_MANY_USER_IDENTIFIERS"),
        (body(*[email(sha(str(i))) for i in range(10_001)]), "TOO_MANY_AUDIENCE_MEMBERS"),
        (body(email(sha("a")), destinations=[{"operatingAccount": {"accountType": "GOOGLE_ADS",
              "accountId": "123-456-7890"}, "productDestinationId": "555"}]), "INVALID_DESTINATION"),
        (body({"userData": {"userIdentifiers": [{"address": {"givenName": sha("a"), "familyName": sha("b"),
              "regionCode": sha("US"), "postalCode": "94045"}}]}}), "INVALID_COUNTRY_CODE"),
        (body({"userData": {"userIdentifiers": [{"address": {"givenName": sha("a"), "regionCode": "US",
              "postalCode": "94045"}}]}}), "REQUIRED_FIELD_MISSING"),
        (body(email(sha("a")), encoding="BASE64"), "INVALID_SHA256_FORMAT"),
        (body(email("not base64!"), encoding="BASE64"), "INVALID_BASE64_ENCODING"),
    ],
)  # fmt: skip
def test_refuses_invalid_requests(fake: GoogleAdsSandbox, payload: Any, reason: str) -> None:
    answer = post(fake, payload)
    assert answer.status_code == 400
    assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert reason in reasons(answer)
    assert fake.members("555") == {}
    assert fake.violations


def test_fast_fail_names_each_invalid_member(fake: GoogleAdsSandbox) -> None:
    answer = post(fake, body(email(sha("a")), email("bad"), email(sha("c")), email("BAD")))
    violations = answer.json()["error"]["details"][1]["fieldViolations"]
    assert [v["field"] for v in violations] == ["audience_members[1]", "audience_members[3]"]
    assert fake.members("555") == {}


def test_remove_refuses_ingest_only_fields(fake: GoogleAdsSandbox) -> None:
    assert post(fake, body(email(sha("a"))), "/v1/audienceMembers:remove").status_code == 400


def test_authentication_and_quota(fake: GoogleAdsSandbox) -> None:
    assert requests.post(f"{fake.url}{INGEST}", json=body(email(sha("a"))), timeout=5).status_code == 401
    fake.exhaust_next(1, "7s")
    answer = post(fake, body(email(sha("a"))))
    assert answer.status_code == 429
    assert answer.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in answer.json()[
        "error"
    ]["details"]
