"""The fake Marketing Cloud, Intercom and Customer.io servers refuse what the platforms refuse (raw HTTP)."""

import base64

import requests

from activation_pipeline.destinations.customerio.server import CustomerioSandbox
from activation_pipeline.destinations.intercom.server import IntercomSandbox
from activation_pipeline.destinations.salesforce_marketing_cloud.server import MarketingCloudSandbox


def test_marketing_cloud_token_and_rowset_rules() -> None:
    """Client credentials only; a rowset needs the token, the primary key and existing columns."""
    with MarketingCloudSandbox(client_id="i", client_secret="s", create_missing=False) as server:
        server.add_data_extension("DE", ("SubscriberKey",), ("Name",))
        token_url = f"{server.url}/v2/token"
        assert requests.post(token_url, json={"grant_type": "password"}, timeout=5).status_code == 400
        bad = {"grant_type": "client_credentials", "client_id": "i", "client_secret": "x"}
        assert requests.post(token_url, json=bad, timeout=5).status_code == 401
        good = requests.post(token_url, json={**bad, "client_secret": "s"}, timeout=5).json()
        assert good["rest_instance_url"] == f"{server.url}/" and good["expires_in"] == 1079
        rowset = f"{good['rest_instance_url']}hub/v1/dataevents/key:DE/rowset"
        auth = {"Authorization": f"Bearer {good['access_token']}"}
        row = {"keys": {"SubscriberKey": "u1"}, "values": {"Name": "A"}}
        assert requests.post(rowset, json=[row], timeout=5).status_code == 401
        missing_key = requests.post(
            rowset, json=[{"keys": {}, "values": {"Name": "B"}}], headers=auth, timeout=5
        )
        assert missing_key.status_code == 400 and "primary key" in missing_key.text
        assert requests.post(rowset, json=[row], headers=auth, timeout=5).status_code == 200
        assert server.rows("DE") == [{"SubscriberKey": "u1", "Name": "A"}]
        unknown = requests.post(
            f"{server.url}/hub/v1/dataevents/key:Other/rowset", json=[row], headers=auth, timeout=5
        )
        assert unknown.status_code == 400
        server.expire_tokens()
        assert requests.post(rowset, json=[row], headers=auth, timeout=5).status_code == 401


def test_intercom_conflicts_unknown_attributes_and_auth() -> None:
    """Duplicate external ids conflict (409 naming the contact); unknown custom attributes are refused."""
    with IntercomSandbox(access_token="t") as server:
        auth = {"Authorization": "Bearer t"}
        url = server.url
        assert (
            requests.post(
                f"{url}/contacts", json={"role": "user", "external_id": "u1"}, timeout=5
            ).status_code
            == 401
        )
        made = requests.post(
            f"{url}/contacts", json={"role": "user", "external_id": "u1"}, headers=auth, timeout=5
        )
        assert made.status_code == 200 and made.headers["X-RateLimit-Limit"] == "1666"
        again = requests.post(
            f"{url}/contacts", json={"role": "user", "external_id": "u1"}, headers=auth, timeout=5
        )
        assert again.status_code == 409 and made.json()["id"] in again.json()["errors"][0]["message"]
        custom = {"role": "user", "email": "a@example.com", "custom_attributes": {"tier": "gold"}}
        refused = requests.post(f"{url}/contacts", json=custom, headers=auth, timeout=5)
        assert refused.status_code == 400 and "does not exist" in refused.text
        nobody = requests.post(f"{url}/contacts", json={"role": "user"}, headers=auth, timeout=5)
        assert nobody.status_code == 400
        event = {"event_name": "x", "created_at": 1, "user_id": "nobody"}
        assert requests.post(f"{url}/events", json=event, headers=auth, timeout=5).status_code == 404


def test_customerio_limits_and_identifiers() -> None:
    """Over 500 KB is refused whole; two person identifiers, or none, refuse that action only (207)."""
    with CustomerioSandbox(site_id="s", api_key="k") as server:
        auth = {"Authorization": "Basic " + base64.b64encode(b"s:k").decode()}
        url = f"{server.url}/api/v2/batch"
        ok = {"type": "person", "action": "identify", "identifiers": {"id": "u1"}}
        both = {"type": "person", "action": "identify", "identifiers": {"id": "u2", "email": "e@example.com"}}
        answer = requests.post(url, json={"batch": [ok, both]}, headers=auth, timeout=5)
        assert answer.status_code == 207 and [e["batch_index"] for e in answer.json()["errors"]] == [1]
        huge = {**ok, "attributes": {"n": "x" * 30_000}}
        assert requests.post(url, json={"batch": [huge] * 20}, headers=auth, timeout=5).status_code == 413
        assert requests.post(url, json={"batch": [ok]}, timeout=5).status_code == 401
        bad_id = {
            "type": "person",
            "action": "event",
            "identifiers": {"id": "u1"},
            "name": "E",
            "id": "not-a-ulid",
        }
        assert requests.post(url, json={"batch": [bad_id]}, headers=auth, timeout=5).status_code == 400
