"""The fake Marketo REST API: identity, Marketo-style errors in HTTP 200, limits."""

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from activation_pipeline.destinations.marketo_static_lists.server import MarketoSandbox


@pytest.fixture
def fake() -> Iterator[MarketoSandbox]:
    with MarketoSandbox("id", "secret", calls_per_window=6) as server:
        server.create_list(7)
        yield server


def token(fake: MarketoSandbox) -> str:
    answer = requests.post(
        f"{fake.url}/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"},
        timeout=5,
    )
    assert answer.status_code == 200 and answer.json()["token_type"] == "bearer"
    return str(answer.json()["access_token"])


def call(fake: MarketoSandbox, method: str, path: str, tok: str | None, **kw: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    answer = requests.request(method, f"{fake.url}{path}", headers=headers, timeout=5, **kw)
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def codes(body: dict[str, Any]) -> list[str]:
    return [e["code"] for e in body.get("errors", [])]


def test_identity_and_token_errors(fake: MarketoSandbox) -> None:
    bad = requests.post(
        f"{fake.url}/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "id", "client_secret": "wrong"},
        timeout=5,
    )
    assert bad.status_code == 401
    assert codes(
        call(fake, "GET", "/rest/v1/leads.json", None, params={"filterType": "email", "filterValues": "a"})
    ) == ["600"]
    tok = token(fake)
    fake.expire_tokens()
    assert codes(
        call(fake, "GET", "/rest/v1/leads.json", tok, params={"filterType": "email", "filterValues": "a"})
    ) == ["602"]
    fake.revoke_tokens()
    assert codes(
        call(fake, "GET", "/rest/v1/leads.json", tok, params={"filterType": "email", "filterValues": "a"})
    ) == ["601"]


def test_lookup_and_membership(fake: MarketoSandbox) -> None:
    lead = fake.add_lead("Ann@Example.com")
    tok = token(fake)
    found = call(
        fake,
        "GET",
        "/rest/v1/leads.json",
        tok,
        params={"filterType": "email", "filterValues": "ann@example.com,b@x.com", "fields": "id,email"},
    )
    assert found["success"] is True and found["result"] == [{"id": lead, "email": "Ann@Example.com"}]
    added = call(fake, "POST", "/rest/v1/lists/7/leads.json", tok, json={"input": [{"id": lead}, {"id": 99}]})
    assert added["result"] == [
        {"id": lead, "status": "added"},
        {"id": 99, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    removed = call(fake, "DELETE", "/rest/v1/lists/7/leads.json", tok, params={"id": [lead, lead]})
    assert [r["status"] for r in removed["result"]] == ["removed", "skipped"]
    assert codes(call(fake, "POST", "/rest/v1/lists/8/leads.json", tok, params={"id": lead})) == ["1013"]


def test_limits(fake: MarketoSandbox) -> None:
    tok = token(fake)
    too_many = call(fake, "POST", "/rest/v1/lists/7/leads.json", tok, params={"id": list(range(1, 302))})
    assert codes(too_many) == ["1003"] and fake.violations
    long_uri = requests.get(
        f"{fake.url}/rest/v1/leads.json",
        params={"filterType": "email", "filterValues": ",".join(f"user{i}@example.com" for i in range(500))},
        headers={"Authorization": f"Bearer {tok}"},
        timeout=5,
    )
    assert long_uri.status_code == 414
    results = [
        codes(
            call(fake, "GET", "/rest/v1/leads.json", tok, params={"filterType": "email", "filterValues": "a"})
        )
        for _ in range(6)
    ]
    assert results[-1] == ["606"]
    assert results[:4] == [[]] * 4


def test_token_in_query_is_a_violation(fake: MarketoSandbox) -> None:
    tok = token(fake)
    call(
        fake,
        "GET",
        "/rest/v1/leads.json",
        tok,
        params={"filterType": "email", "filterValues": "a", "access_token": tok},
    )
    assert fake.violations == ["access token sent as a query parameter (deprecated)"]


def test_demo_mode_creates_missing_leads_and_lists() -> None:
    with MarketoSandbox("id", "secret", create_missing=True) as fake:
        tok = token(fake)
        found = call(
            fake, "GET", "/rest/v1/leads.json", tok, params={"filterType": "email", "filterValues": "a@x.com"}
        )
        lead = found["result"][0]["id"]
        added = call(fake, "POST", "/rest/v1/lists/99/leads.json", tok, params={"id": lead})
        assert added["result"] == [{"id": lead, "status": "added"}]
        assert fake.member_emails(99) == {"a@x.com"}
