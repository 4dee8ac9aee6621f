"""The Profile API over real HTTP: every path and filter, pagination, errors, merges and normalisation."""

from __future__ import annotations

from activation_pipeline_tests.test_serving.conftest import Served


def test_traits_of_a_profile_found_by_its_email(served: Served) -> None:
    answer = served.user("email:jane.doe@example.com", "traits", limit=200)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["traits"] == {
        "big_spender": True,
        "browsers": True,
        "first_name": "Jane",
        "orders_count": 3,
        "plan": "pro",
        "revenue_total": 135.0,
    }
    assert body["cursor"]["has_more"] is False
    assert answer.headers["Request-Id"]
