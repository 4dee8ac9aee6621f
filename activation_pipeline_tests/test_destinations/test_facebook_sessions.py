"""Issue #11: Meta sessions per operation, the audience id kept in the state store, and what Meta's SDK sends."""

from __future__ import annotations

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
from activation_pipeline.state.destination_memory import DestinationMemory
from activation_pipeline.state.store import StateStore

TOKEN = "meta-session-token"
CONNECTION = "audience.vip.meta"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FacebookSandbox]:
    monkeypatch.setenv("META_SESSION_TOKEN", TOKEN)
    with FacebookSandbox(TOKEN, api_version="v24.0") as server:
        yield server


def client(fake: FacebookSandbox, memory: DestinationMemory | None = None, **kwargs: Any) -> FacebookClient:
    destination = FacebookDestination.model_validate(
        {
            "id": "meta",
            "type": "facebook_custom_audiences",
            "settings": {
                "ad_account_id": "act_1234567890",
                "access_token": {"env": "META_SESSION_TOKEN"},
                "base_url": fake.url,
            },
        }
    )
    options = ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=2), memory=memory)
    return FacebookClient(destination, options, **kwargs)


def rec(i: int, op: Operation = Operation.ADD) -> OutboundRecord:
    return OutboundRecord(f"r{i}", f"p{i}", op, {"identifiers": {"email": [f"user{i}@example.com"]}})


def uploads(fake: FacebookSandbox) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/users")]


def test_a_sync_of_one_request_still_sends_a_session(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Small")
    ctx = BatchContext(CONNECTION, "sync_a", connection_settings={"audience_id": audience})
    c = client(fake)
    result = c.send([rec(1), rec(2)], ctx)
    assert {r.outcome for r in result.results} == {Outcome.ACKNOWLEDGED}
    (upload,) = uploads(fake)
    session = upload.json()["session"]
    assert session["session_id"] == session_id_for("sync_a", CONNECTION, "add", c._instance)
    assert session["batch_seq"] == 1 and session["last_batch_flag"] is True
    assert fake.violations == []


def test_adds_and_removes_are_separate_sessions_each_ending_on_its_own_last_record(
    fake: FacebookSandbox,
) -> None:
    audience = fake.create_audience("Mixed")
    c = client(fake)
    totals = {"add": 5, "remove": 2}
    settings = {"audience_id": audience}
    # Batch 1: three adds and both removes; batch 2: the last two adds. The remove session ends in batch 1.
    first = [rec(1), rec(2), rec(3), rec(10, Operation.REMOVE), rec(11, Operation.REMOVE)]
    c.send(first, BatchContext(CONNECTION, "sync_m", 1, 2, 7, settings, totals))
    c.send([rec(4), rec(5)], BatchContext(CONNECTION, "sync_m", 2, 2, 7, settings, totals))
    sent = [(r.method, r.json()["session"], r.json()["payload"]["schema"]) for r in uploads(fake)]
    adds = [s for m, s, _ in sent if m == "POST"]
    removes = [s for m, s, _ in sent if m == "DELETE"]
    assert [(s["batch_seq"], s["last_batch_flag"], s["estimated_num_total"]) for s in adds] == [
        (1, False, 5),
        (2, True, 5),
    ]
    assert [(s["batch_seq"], s["last_batch_flag"], s["estimated_num_total"]) for s in removes] == [
        (1, True, 2)
    ]
    assert {s["session_id"] for s in adds}.isdisjoint({s["session_id"] for s in removes})
    assert {tuple(schema) for _, _, schema in sent} == {FACEBOOK_SCHEMA}  # one schema for every request
    assert fake.violations == []
    assert all(state.last_seq is not None for state in fake.sessions.values())  # every session ended


def test_found_or_created_audience_is_kept_in_the_state_store(
    fake: FacebookSandbox, store: StateStore
) -> None:
    memory = DestinationMemory(store, "meta")
    settings = {"audience_name": "Acme VIP"}
    client(fake, memory).send([rec(1)], BatchContext(CONNECTION, "sync_1", connection_settings=settings))
    (audience,) = fake.audiences.values()
    assert memory.get(CONNECTION, "audience_id:Acme VIP") == audience.audience_id
    before = len(fake.requests)
    result = client(fake, memory).send(
        [rec(2)], BatchContext(CONNECTION, "sync_2", connection_settings=settings)
    )
    later = fake.requests[before:]
    assert [r.path for r in later if r.path.endswith("/customaudiences")] == []  # no lookup by name again
    assert [r.method for r in later] == ["GET", "POST"]  # the audience read once, then the upload
    assert result.results[0].outcome is Outcome.ACKNOWLEDGED
    assert len(fake.members(audience.audience_id)["EMAIL"]) == 2


def test_renamed_audience_is_a_clear_error_naming_the_connection(
    fake: FacebookSandbox, store: StateStore
) -> None:
    memory = DestinationMemory(store, "meta")
    settings = {"audience_name": "Acme VIP"}
    client(fake, memory).send([rec(1)], BatchContext(CONNECTION, "sync_1", connection_settings=settings))
    (audience,) = fake.audiences.values()
    fake.rename_audience(audience.audience_id, "Old VIP list")
    result = client(fake, memory).send(
        [rec(2)], BatchContext(CONNECTION, "sync_2", connection_settings=settings)
    )
    (only,) = result.results
    assert only.outcome is Outcome.FAILED
    assert CONNECTION in only.reason and "Old VIP list" in only.reason and "audience_name" in only.reason
    assert len(fake.audiences) == 1  # no second audience created behind the user's back


def test_deleted_audience_is_a_clear_error_naming_the_connection(
    fake: FacebookSandbox, store: StateStore
) -> None:
    memory = DestinationMemory(store, "meta")
    settings = {"audience_name": "Acme VIP"}
    client(fake, memory).send([rec(1)], BatchContext(CONNECTION, "sync_1", connection_settings=settings))
    (audience,) = fake.audiences.values()
    fake.delete_audience(audience.audience_id)
    result = client(fake, memory).send(
        [rec(2)], BatchContext(CONNECTION, "sync_2", connection_settings=settings)
    )
    (only,) = result.results
    assert only.outcome is Outcome.FAILED
    assert CONNECTION in only.reason and "no longer exists" in only.reason
    assert len(uploads(fake)) == 1


def test_flagged_audience_471_is_a_clear_error(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Flagged")
    fake.flag_audience(audience)
    ctx = BatchContext(CONNECTION, "sync_f", connection_settings={"audience_id": audience})
    (only,) = client(fake).send([rec(1)], ctx).results
    assert only.outcome is Outcome.FAILED
    assert CONNECTION in only.reason and "471" in only.reason
    assert uploads(fake) == []


# ---------------------------------------------------------------------------- Meta's official SDK
def _sdk(fake: FacebookSandbox) -> Any:
    api_module = pytest.importorskip("facebook_business.api")
    api = api_module.FacebookAdsApi.init(access_token=TOKEN, api_version="v24.0", crash_log=False)
    api._session.GRAPH = fake.url  # the SDK's base URL: send to the fake server instead of graph.facebook.com
    return api


def test_fake_accepts_what_metas_sdk_sends(fake: FacebookSandbox) -> None:
    from facebook_business.adobjects.customaudience import CustomAudience

    api = _sdk(fake)
    audience_id = fake.create_audience("From the SDK")
    audience = CustomAudience(audience_id, api=api)
    schema = [CustomAudience.Schema.MultiKeySchema.email, CustomAudience.Schema.MultiKeySchema.fn]
    session = {"session_id": 42, "batch_seq": 1, "last_batch_flag": True, "estimated_num_total": 2}
    added = audience.add_users(
        schema, [["Jane@Example.com", "Jane"], ["john@example.com", "John"]], is_raw=True, session=session
    )
    assert added.json()["num_received"] == 2
    post = uploads(fake)[-1]
    assert post.method == "POST"
    assert (post.header("content-type") or "").startswith("application/x-www-form-urlencoded")
    assert "access_token" in post.query  # the SDK's token travels in the query string
    removed = audience.remove_users(
        schema, [["john@example.com", "John"]], is_raw=True, session={**session, "session_id": 43}
    )
    assert removed.json()["num_received"] == 1
    delete = uploads(fake)[-1]
    assert delete.method == "DELETE" and delete.body == b"" and "payload" in delete.query
    assert fake.members(audience_id)["EMAIL"] == {sha("jane@example.com")}
    assert fake.violations == []
    read = CustomAudience(audience_id, api=api).api_get(fields=["name", "operation_status"])
    assert read["name"] == "From the SDK" and read["operation_status"]["code"] == 200


def test_fake_takes_the_token_in_a_form_body_and_delete_parameters_in_the_query(
    fake: FacebookSandbox,
) -> None:
    import json

    import requests

    audience = fake.create_audience("Raw")
    payload = json.dumps({"schema": ["EMAIL"], "data": [[sha("raw@example.com")]]})
    added = requests.post(
        f"{fake.url}/v24.0/{audience}/users", data={"access_token": TOKEN, "payload": payload}, timeout=10
    )
    assert added.status_code == 200, added.text
    removed = requests.delete(
        f"{fake.url}/v24.0/{audience}/users", params={"access_token": TOKEN, "payload": payload}, timeout=10
    )
    assert removed.status_code == 200, removed.text
    assert fake.members(audience)["EMAIL"] == set()
    wrong = requests.post(
        f"{fake.url}/v24.0/{audience}/users", data={"access_token": "nope", "payload": payload}, timeout=10
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == 190


def test_a_sync_resumed_by_another_client_is_a_new_session(fake: FacebookSandbox) -> None:
    audience = fake.create_audience("Resumed")
    settings = {"audience_id": audience}
    client(fake).send([rec(1)], BatchContext(CONNECTION, "sync_r", 1, 2, 2, settings, {"add": 2}))
    resumed = client(fake).send([rec(2)], BatchContext(CONNECTION, "sync_r", 1, 1, 1, settings, {"add": 1}))
    assert resumed.results[0].outcome is Outcome.ACKNOWLEDGED
    first, second = (r.json()["session"] for r in uploads(fake))
    assert first["session_id"] != second["session_id"] and second["batch_seq"] == 1
    assert fake.violations == []
