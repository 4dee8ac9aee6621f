"""The Profile API over real HTTP, on DuckDB and PostgreSQL: every path and filter, pagination, errors,
merged profiles and identifier normalisation, with Segment's response shapes."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from activation_pipeline_tests.test_serving.conftest import SPACE, Served

JANE = "user_id:u-jane"
JANE_TRAITS = {
    "big_spender": True,
    "browsers": True,
    "first_name": "Jane",
    "orders_count": 3,
    "plan": "pro",
    "revenue_total": 135.0,
}
NOT_FOUND = {"error": {"code": "not_found", "message": "Profile was not found."}}


def ok(served: Served, identifier: str, resource: str, **params: Any) -> dict[str, Any]:
    """The JSON body of a 200 answer."""
    answer = served.user(identifier, resource, **params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["Request-Id"]
    return dict(answer.json())


def pages(served: Served, identifier: str, resource: str, key: str, **params: Any) -> list[Any]:
    """Follow `cursor.next` to the end; every page's items, in order."""
    items: list[Any] = []
    cursor = ""
    for _ in range(50):
        body = ok(served, identifier, resource, **params, **({"next": cursor} if cursor else {}))
        chunk = body[key]
        items.extend(chunk.items() if isinstance(chunk, dict) else chunk)
        assert len(chunk) <= int(params.get("limit", 10))
        if not body["cursor"]["has_more"]:
            assert body["cursor"]["next"] == ""
            return items
        cursor = body["cursor"]["next"]
        assert f"next={cursor}" in body["cursor"]["url"].replace("%3D", "=")
    raise AssertionError("pagination did not end")


# ------------------------------------------------------------------------------------------------ traits


def test_traits_by_email_hold_custom_computed_traits_and_audiences(served: Served) -> None:
    body = ok(served, "email:jane.doe@example.com", "traits", limit=200)
    assert body["traits"] == JANE_TRAITS
    assert body["cursor"] == {
        "url": f"/v1/spaces/{SPACE}/collections/users/profiles/email:jane.doe@example.com/traits",
        "has_more": False,
        "next": "",
        "limit": 200,
    }


def test_traits_default_to_ten_and_page_by_key(served: Served) -> None:
    assert ok(served, JANE, "traits")["cursor"]["limit"] == 10
    first = ok(served, JANE, "traits", limit=4)
    assert list(first["traits"]) == ["big_spender", "browsers", "first_name", "orders_count"]
    assert first["cursor"]["has_more"] is True and first["cursor"]["next"] == "plan"
    assert dict(pages(served, JANE, "traits", "traits", limit=4)) == JANE_TRAITS
    assert dict(pages(served, JANE, "traits", "traits", limit=1)) == JANE_TRAITS


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"class": "audience"}, {"big_spender": True, "browsers": True}),
        ({"class": "computed_trait"}, {"orders_count": 3, "revenue_total": 135.0}),
        ({"class": "custom_trait"}, {"first_name": "Jane", "plan": "pro"}),
        ({"include": "first_name,orders_count,nothing"}, {"first_name": "Jane", "orders_count": 3}),
        ({"include": "first_name,big_spender", "class": "audience"}, {"big_spender": True}),
    ],
)
def test_traits_filters(served: Served, params: dict[str, str], expected: dict[str, Any]) -> None:
    assert ok(served, JANE, "traits", **params)["traits"] == expected


def test_verbose_traits(served: Served) -> None:
    traits = ok(served, JANE, "traits", verbose="true", include="plan")["traits"]
    assert traits == {"plan": {"value": "pro", "source_id": None, "updated_at": "2026-10-20T00:00:00.000Z"}}


@pytest.mark.parametrize(
    "params", [{"limit": "0"}, {"limit": "201"}, {"limit": "ten"}, {"class": "trait"}, {"verbose": "yes"}]
)
def test_invalid_trait_parameters_are_400(served: Served, params: dict[str, str]) -> None:
    answer = served.user(JANE, "traits", **params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation_error"


# ------------------------------------------------------------------------------------------ external ids

JANE_IDS = [
    ("anonymous_id", "anon-old"),
    ("anonymous_id", "anon-jane"),
    ("email", "jane.doe@example.com"),
    ("phone", "+12015550123"),
    ("user_id", "u-jane"),
]


def test_external_ids_in_segments_shape_oldest_first(served: Served) -> None:
    body = ok(served, JANE, "external_ids", limit=100)
    data = body["data"]
    assert [(d["type"], d["id"]) for d in data] == JANE_IDS
    assert set(data[0]) == {
        "source_id",
        "collection",
        "id",
        "type",
        "created_at",
        "encoding",
        "first_message_id",
    }
    assert data[0]["collection"] == "users" and data[0]["encoding"] == "none"
    assert data[0]["created_at"] == "2026-10-01T08:00:00.000000Z"
    assert body["cursor"]["has_more"] is False


def test_external_ids_include_and_pages(served: Served) -> None:
    emails = ok(served, JANE, "external_ids", include="email,phone")["data"]
    assert [(d["type"], d["id"]) for d in emails] == [
        ("email", "jane.doe@example.com"),
        ("phone", "+12015550123"),
    ]
    assert [(d["type"], d["id"]) for d in pages(served, JANE, "external_ids", "data", limit=2)] == JANE_IDS


# ------------------------------------------------------------------------------------------------ events


def _names(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["timestamp"], e["event"]) for e in events]


def test_events_newest_first_with_segments_fields(served: Served) -> None:
    body = ok(served, JANE, "events", limit=3)
    assert _names(body["data"]) == [
        ("2026-10-12T12:00:00.000Z", "Order Completed"),
        ("2026-10-05T12:00:00.000Z", "Order Completed"),
        ("2026-10-04T08:00:00.000Z", None),
    ]
    order = body["data"][0]
    assert order["type"] == "track" and order["properties"] == {"revenue": 10}
    assert order["external_ids"] == [
        {"collection": "users", "type": "user_id", "id": "u-jane", "encoding": "none"}
    ]
    assert order["related"]["users"].startswith("use_")
    assert {"context", "message_id", "source_id"} <= set(order)
    group = body["data"][2]
    assert group["type"] == "group" and group["group_id"] == "acct-1" and group["traits"] == {"name": "Acme"}
    assert body["cursor"]["has_more"] is True


def test_events_pages_and_filters(served: Served) -> None:
    every = pages(served, JANE, "events", "data", limit=2)
    assert len(every) == 9
    assert [e["timestamp"] for e in every] == sorted((e["timestamp"] for e in every), reverse=True)
    ascending = pages(served, JANE, "events", "data", limit=4, sort="asc")
    assert ascending == list(reversed(every))
    orders = ok(served, JANE, "events", include="Order Completed", limit=100)["data"]
    assert [e["properties"]["revenue"] for e in orders] == [10, 45, 80]
    rest = ok(served, JANE, "events", exclude="Order Completed,Product Viewed", limit=100)["data"]
    assert {e["type"] for e in rest} == {"identify", "group"}
    window = ok(served, JANE, "events", start="2026-10-03T00:00:00Z", end="2026-10-06", limit=100)["data"]
    assert _names(window) == [("2026-10-05T12:00:00.000Z", "Order Completed"), ("2026-10-04T08:00:00.000Z", None),
                              ("2026-10-03T12:00:00.000Z", "Order Completed")]  # fmt: skip


@pytest.mark.parametrize(
    "params", [{"sort": "up"}, {"start": "yesterday"}, {"next": "%%%"}, {"limit": "101"}]
)
def test_invalid_event_parameters_are_400(served: Served, params: dict[str, str]) -> None:
    assert served.user(JANE, "events", **params).status_code == 400


# --------------------------------------------------------------------------------------- links, accounts


def test_user_links_name_the_account(served: Served) -> None:
    body = ok(served, JANE, "links")
    assert body["data"] == [
        {
            "to_collection": "accounts",
            "external_ids": [
                {
                    "source_id": None,
                    "collection": "accounts",
                    "id": "acct-1",
                    "type": "group_id",
                    "created_at": "2026-10-04T08:00:00.000000Z",
                    "encoding": "none",
                    "first_message_id": None,
                }
            ],
        }
    ]
    assert ok(served, "user_id:u-bob", "links")["data"][0]["external_ids"][0]["id"] == "acct-1"


def test_account_collection(served: Served) -> None:
    account = "collections/accounts/profiles/group_id:acct-1"
    traits = served.get(f"{account}/traits")
    assert traits.status_code == 200 and traits.json()["traits"] == {"name": "Acme"}
    ids = served.get(f"{account}/external_ids").json()["data"]
    assert [(d["type"], d["id"], d["collection"]) for d in ids] == [("group_id", "acct-1", "accounts")]
    links = served.get(f"{account}/links").json()
    users = [{i["type"]: i["id"] for i in link["external_ids"]}.get("user_id") for link in links["data"]]
    assert users == ["u-jane", "u-bob"]
    assert all(link["to_collection"] == "users" for link in links["data"])
    assert served.get("collections/accounts/profiles/group_id:nope/traits").status_code == 404
    assert served.get(f"{account}/events").status_code == 404
    assert served.get("collections/accounts/profiles/user_id:u-jane/traits").status_code == 400


def test_metadata(served: Served) -> None:
    meta = ok(served, JANE, "metadata")["metadata"]
    assert meta["created_at"] == "2026-10-01T08:00:00.000000Z"
    assert meta["updated_at"] == "2026-10-12T12:00:00.000000Z"
    assert meta["expires_at"] is None


# ---------------------------------------------------------------------------- merges and normalisation


def test_a_merged_profile_answers_with_the_surviving_profile(served: Served) -> None:
    m = served.pipeline.engine.tables.profile_merges
    merges = served.pipeline.read(sa.select(m.c.merged_profile_id, m.c.into_profile_id)).to_pylist()
    assert len(merges) == 1
    merged, survivor = merges[0]["merged_profile_id"], merges[0]["into_profile_id"]
    for identifier in (f"use_{merged}", f"use_{survivor}", "anonymous_id:anon-jane", "anonymous_id:anon-old"):
        assert ok(served, identifier, "traits", limit=50)["traits"] == JANE_TRAITS, identifier
    assert ok(served, f"use_{merged}", "events", limit=1)["data"][0]["related"]["users"] == f"use_{survivor}"


@pytest.mark.parametrize(
    "identifier",
    [
        "phone:+12015550123",
        "phone:%2B12015550123",
        "phone:(201) 555-0123",
        "phone:201.555.0123",
        "phone:2015550123",
        "phone:+1 201-555-0123",
        "email: Jane.Doe@EXAMPLE.com ",
        "user_id: u-jane ",
    ],
)
def test_identifiers_written_any_way_find_the_profile(served: Served, identifier: str) -> None:
    assert ok(served, identifier, "traits", limit=50)["traits"] == JANE_TRAITS


@pytest.mark.parametrize(
    "identifier",
    ["user_id:nobody", "email:nobody@example.com", "phone:+12015550199", "use_12345", "crm:u-jane"],
)
def test_unknown_profiles_are_404_as_segment_answers(served: Served, identifier: str) -> None:
    for resource in ("traits", "external_ids", "events", "metadata", "links"):
        answer = served.user(identifier, resource)
        assert answer.status_code == 404, (identifier, resource)
        assert answer.json() == NOT_FOUND


def test_identifier_without_a_type_is_400(served: Served) -> None:
    answer = served.user("u-jane", "traits")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "validation_error"


# ------------------------------------------------------------------------------------ auth and routing


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic " + "d3Jvbmc6", "Bearer abc", "Basic !!!not-base64", "Basic "],
)
def test_missing_or_wrong_tokens_are_401(served: Served, authorization: str | None) -> None:
    import requests

    headers = {"Authorization": authorization} if authorization else {}
    for identifier in (JANE, "user_id:nobody"):
        answer = requests.get(
            f"{served.base}/v1/spaces/{SPACE}/collections/users/profiles/{identifier}/traits",
            headers=headers,
            timeout=10,
        )
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "authentication_error"
        assert answer.headers["WWW-Authenticate"].startswith("Basic")


def test_the_token_is_the_username_and_the_password_is_ignored(served: Served) -> None:
    import requests

    from activation_pipeline_tests.test_serving.conftest import TOKEN

    url = f"{served.base}/v1/spaces/{SPACE}/collections/users/profiles/{JANE}/traits"
    assert requests.get(url, auth=(TOKEN, "anything"), timeout=10).status_code == 200
    assert requests.get(url, auth=("", TOKEN), timeout=10).status_code == 401


def test_other_spaces_and_routes_are_404(served: Served) -> None:
    import requests

    from activation_pipeline_tests.test_serving.conftest import TOKEN

    auth = (TOKEN, "")
    other = requests.get(
        f"{served.base}/v1/spaces/spa_other/collections/users/profiles/{JANE}/traits", auth=auth, timeout=10
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    for path in (f"collections/users/profiles/{JANE}/friends", "collections/groups/profiles/x:y/traits"):
        answer = served.get(path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert requests.get(f"{served.base}/v2/anything", auth=auth, timeout=10).status_code == 404
    posted = requests.post(
        f"{served.base}/v1/spaces/{SPACE}/collections/users/profiles/{JANE}/traits", auth=auth, timeout=10
    )
    assert posted.status_code == 405
