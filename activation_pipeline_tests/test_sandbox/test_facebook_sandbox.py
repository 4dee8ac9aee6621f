"""The fake Meta Marketing API refuses what the real one refuses and answers in Meta's format."""

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from activation_pipeline.destinations.facebook_custom_audiences.server import FacebookSandbox

TOKEN = "sandbox-token"
H = {"Authorization": f"Bearer {TOKEN}"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def fake() -> Iterator[FacebookSandbox]:
    with FacebookSandbox(TOKEN, api_version="v24.0") as server:
        yield server


def upload(
    fake: FacebookSandbox, audience: str, body: Any, method: str = "POST", **kw: Any
) -> requests.Response:
    return requests.request(
        method, f"{fake.url}/v24.0/{audience}/users", json=body, headers=H, timeout=5, **kw
    )


def payload(*rows: list[str], schema: list[str] | None = None) -> dict[str, Any]:
    return {"payload": {"schema": schema or ["EMAIL", "PHONE"], "data": [list(r) for r in rows]}}


def test_accepts_a_valid_upload_and_keeps_membership(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    answer = upload(fake, audience, payload([sha("a@x.com"), ""], [sha("b@x.com"), sha("12015550123")]))
    assert answer.status_code == 200
    body = answer.json()
    assert body["audience_id"] == audience and body["num_received"] == 2 and body["num_invalid_entries"] == 0
    assert fake.members(audience)["EMAIL"] == {sha("a@x.com"), sha("b@x.com")}
    assert upload(fake, audience, payload([sha("a@x.com"), ""]), "DELETE").status_code == 200
    assert fake.members(audience)["EMAIL"] == {sha("b@x.com")}


@pytest.mark.parametrize(
    "body",
    [
        payload(["a@x.com", ""]),
        payload([sha("a@x.com").upper(), ""]),
        payload([sha("a@x.com")]),
        payload(["", ""]),
        payload([sha("a@x.com"), sha("b@x.com")], schema=["EMAIL", "EMAIL"]),
        payload([sha("a@x.com"), "x"], schema=["EMAIL", "NOT_A_KEY"]),
        payload([sha("a@x.com"), "x"], schema=["EMAIL", "MADID"]),
        {"payload": {"schema": ["EMAIL"], "data": []}},
        {"data": []},
    ],
)
def test_refuses_contract_violations(fake: FacebookSandbox, body: Any) -> None:
    audience = fake.create_audience("A")
    answer = upload(fake, audience, body)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 100
    assert fake.violations


def test_at_most_10000_rows(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    rows = [[sha(f"{i}@x.com")] for i in range(10_001)]
    answer = upload(fake, audience, payload(*rows, schema=["EMAIL"]))
    assert answer.status_code == 400 and "10000" in answer.json()["error"]["message"]


def test_version_and_token_are_checked(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    body = payload([sha("a@x.com"), ""])
    assert requests.post(f"{fake.url}/{audience}/users", json=body, headers=H, timeout=5).status_code == 400
    assert (
        requests.post(f"{fake.url}/v19.0/{audience}/users", json=body, headers=H, timeout=5).status_code
        == 400
    )
    wrong = requests.post(
        f"{fake.url}/v24.0/{audience}/users", json=body, headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert wrong.json()["error"]["code"] == 190
    by_param = requests.post(
        f"{fake.url}/v24.0/{audience}/users", params={"access_token": TOKEN}, json=body, timeout=5
    )
    assert by_param.status_code == 200


def test_form_encoded_and_single_key_uploads(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    form = {"payload": json.dumps({"schema": "EMAIL_SHA256", "data": [sha("a@x.com")]})}
    answer = requests.post(f"{fake.url}/v24.0/{audience}/users", data=form, headers=H, timeout=5)
    assert answer.status_code == 200
    assert fake.members(audience)["EMAIL"] == {sha("a@x.com")}


def session(seq: int, last: bool, sid: int = 77, total: int | None = 3) -> dict[str, Any]:
    fields: dict[str, Any] = {"session_id": sid, "batch_seq": seq, "last_batch_flag": last}
    if total is not None:
        fields["estimated_num_total"] = total
    return fields


def test_session_fields_must_stay_consistent(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    row = [sha("a@x.com"), ""]
    assert upload(fake, audience, {**payload(row), "session": session(1, False)}).status_code == 200
    assert (
        upload(fake, audience, {**payload(row), "session": session(1, False)}).status_code == 400
    )  # seq again
    assert upload(fake, audience, {**payload(row), "session": session(2, False, total=9)}).status_code == 400
    assert upload(fake, audience, {**payload(row), "session": session(2, False)}, "DELETE").status_code == 400
    assert upload(fake, audience, {**payload(row), "session": session(2, True)}).status_code == 200
    assert (
        upload(fake, audience, {**payload(row), "session": session(3, False)}).status_code == 400
    )  # finished
    assert upload(fake, audience, {**payload(row), "session": {"session_id": "x"}}).status_code == 400
    assert len(fake.violations) == 5


def test_throttle_answers_like_meta(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("A")
    fake.throttle_next(1, 613, regain_minutes=2)
    answer = upload(fake, audience, payload([sha("a@x.com"), ""]))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["error_subcode"]) == (613, 1487742)
    usage = json.loads(answer.headers["X-Business-Use-Case-Usage"])
    assert next(iter(usage.values()))[0]["estimated_time_to_regain_access"] == 2
    assert upload(fake, audience, payload([sha("a@x.com"), ""])).status_code == 200


def test_audiences_are_created_and_listed(fake: FacebookSandbox) -> None:
    url = f"{fake.url}/v24.0/act_42/customaudiences"
    created = requests.post(
        url,
        json={"name": "VIP", "subtype": "CUSTOM", "customer_file_source": "USER_PROVIDED_ONLY"},
        headers=H,
        timeout=5,
    )
    assert created.status_code == 200
    listed = requests.get(url, params={"fields": "id,name"}, headers=H, timeout=5).json()
    assert listed["data"] == [{"id": created.json()["id"], "name": "VIP"}]
    bad = requests.post(url, json={"name": "x", "subtype": "LOOKALIKE"}, headers=H, timeout=5)
    assert bad.status_code == 400
