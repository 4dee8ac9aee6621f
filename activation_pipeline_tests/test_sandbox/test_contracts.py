"""The sandboxes enforce each destination's real contract: paths, auth, body shape, limits, signature."""

import hashlib
import hmac
import json

import requests

from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.sandbox.base import SandboxServer

MESSAGE = {
    "type": "identify",
    "messageId": "m1",
    "timestamp": "2024-06-01T00:00:00.000Z",
    "userId": "u1",
    "traits": {},
}


def test_webhook_contract() -> None:
    with WebhookSandbox(shared_secret="abc123") as sandbox:
        body = json.dumps(MESSAGE).encode()
        good = hmac.new(b"abc123", body, hashlib.sha1).hexdigest()
        headers = {"Content-Type": "application/json"}
        assert (
            requests.post(
                sandbox.hook_url, data=body, headers={**headers, "X-Signature": good}, timeout=5
            ).status_code
            == 200
        )
        assert (
            requests.post(
                sandbox.hook_url, data=body, headers={**headers, "X-Signature": "0" * 40}, timeout=5
            ).status_code
            == 401
        )
        assert (
            requests.post(sandbox.url + "/elsewhere", data=body, headers=headers, timeout=5).status_code
            == 404
        )
        bad = json.dumps({**MESSAGE, "messageId": ""}).encode()
        signed = hmac.new(b"abc123", bad, hashlib.sha1).hexdigest()
        answer = requests.post(
            sandbox.hook_url, data=bad, headers={**headers, "X-Signature": signed}, timeout=5
        )
        assert answer.status_code == 400 and "messageId" in answer.json()["message"]
        assert len(sandbox.messages()) == 1


def test_braze_contract() -> None:
    with BrazeSandbox() as sandbox:
        url = sandbox.url + "/users/track"
        auth = {"Authorization": "Bearer braze-sandbox-key"}
        assert requests.post(url, json={"attributes": [{"external_id": "u"}]}, timeout=5).status_code == 401
        empty = requests.post(url, json={}, headers=auth, timeout=5)
        assert empty.status_code == 400 and "Valid data must be provided" in empty.json()["message"]
        too_many = {
            "attributes": [{"external_id": f"u{i}"} for i in range(50)],
            "events": [{"external_id": "u", "name": "e", "time": "2024-06-01T00:00:00Z"}] * 26,
        }
        assert requests.post(url, json=too_many, headers=auth, timeout=5).status_code == 400
        mixed = {
            "events": [
                {"external_id": "u", "name": "e", "time": "2024-06-01T00:00:00Z"},
                {"name": "no user", "time": "2024-06-01T00:00:00Z"},
            ]
        }
        answer = requests.post(url, json=mixed, headers=auth, timeout=5)
        assert answer.status_code == 201
        assert answer.json() == {
            "message": "success",
            "events_processed": 1,
            "errors": [{"type": "missing_user_identifier", "input_array": "events", "index": 1}],
        }


def test_iterable_contract() -> None:
    with IterableSandbox() as sandbox:
        key = {"Api-Key": "iterable-sandbox-key"}
        assert (
            requests.post(sandbox.url + "/api/users/update", json={"email": "a@b.co"}, timeout=5).json()[
                "code"
            ]
            == "BadApiKey"
        )
        ok = requests.post(
            sandbox.url + "/api/users/update",
            json={"email": "a@b.co", "dataFields": {"x": 1}},
            headers=key,
            timeout=5,
        )
        assert ok.json() == {"msg": "", "code": "Success", "params": None}
        no_prefer = requests.post(
            sandbox.url + "/api/users/update", json={"userId": "u1"}, headers=key, timeout=5
        )
        assert no_prefer.status_code == 400 and no_prefer.json()["code"] == "BadParams"
        bulk = requests.post(
            sandbox.url + "/api/events/trackBulk",
            json={
                "events": [{"email": "a@b.co", "eventName": "E"}, {"email": "not-an-email", "eventName": "E"}]
            },
            headers=key,
            timeout=5,
        ).json()
        assert (bulk["successCount"], bulk["failCount"], bulk["invalidEmails"]) == (1, 1, ["not-an-email"])
        assert sandbox.users == {"email:a@b.co": {"x": 1}}


def test_admin_endpoint_lists_requests() -> None:
    with SandboxServer() as sandbox:
        requests.post(sandbox.url + "/x", json={"a": 1}, timeout=5)
        listed = requests.get(sandbox.url + "/__sandbox/requests", timeout=5).json()
        assert [(r["path"], r["status"]) for r in listed] == [("/x", 200)]
