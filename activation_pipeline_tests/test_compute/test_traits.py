"""Custom, account, computed (every kind, windows at their edges, filters) and SQL traits."""

from __future__ import annotations

from pathlib import Path

import pytest

from activation_pipeline.compute import traits as traits_module
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.identity import profile_id_for
from activation_pipeline.compute.sql_traits import SqlTraitError

from .conftest import Messages, at, by_profile, make_workspace, run

TRAITS = """
traits:
  custom: [plan, address.city]
  account: [name, plan]
  computed:
    - {key: orders, type: counter, event: Order Completed}
    - {key: orders_7d, type: counter, event: Order Completed, window: 7d}
    - {key: revenue_sum, type: aggregation, function: sum, event: Order Completed, property: revenue}
    - {key: revenue_avg, type: aggregation, function: avg, event: Order Completed, property: revenue}
    - {key: revenue_min_7d, type: aggregation, function: min, event: Order Completed, property: revenue, window: 7d}
    - {key: revenue_max, type: aggregation, function: max, event: Order Completed, property: revenue}
    - {key: big_orders, type: counter, event: Order Completed, where: [{property: revenue, op: ">=", value: 100}]}
    - {key: fav_category, type: most_frequent, event: Product Viewed, property: category, min_count: 2}
    - {key: first_category, type: first_value, event: Product Viewed, property: category}
    - {key: last_category, type: last_value, event: Product Viewed, property: category}
    - {key: categories, type: unique_list, event: Product Viewed, property: category, max_items: 2}
    - {key: nested_sku, type: last_value, event: Product Viewed, property: product.sku}
    - {key: k, type: counter, event: Product Viewed}
    - {key: acct_revenue, type: aggregation, function: sum, event: Order Completed, property: revenue, level: account}
  sql:
    - key: tier
      identifier: user_id
      query: >
        SELECT user_id, CASE WHEN SUM(revenue) >= 200 THEN 'gold' ELSE 'bronze' END AS tier
        FROM order_completed WHERE user_id IS NOT NULL GROUP BY user_id
"""

U1, U2, U3 = (profile_id_for(("user_id", u)) for u in ("u1", "u2", "u3"))


def _history(messages: Messages) -> None:
    m = messages
    m.identify("2026-10-01T00:00", user="u1", plan="free", address={"city": "Leeds"})
    m.identify("2026-10-05T00:00", user="u1", plan="pro")
    m.identify("2026-10-06T00:00", user="u1", plan=None)
    m.identify("2026-10-11T00:00", user="u1", plan="enterprise")  # after as-of
    m.identify("2026-10-01T00:00", user="u3", plan="free")
    m.track(
        "2026-10-03T00:00", "Order Completed", user="u1", revenue=50
    )  # exactly 7d before as-of: outside 7d
    m.track("2026-10-03T00:01", "Order Completed", user="u1", revenue=150)
    m.track("2026-10-10T00:00", "Order Completed", user="u1", revenue=20)  # at as-of: inside
    m.track("2026-10-10T00:01", "Order Completed", user="u1", revenue=999)  # after as-of: ignored
    for day, category in (
        ("01", "Books"),
        ("02", "Shoes"),
        ("05", "Books"),
        ("06", "Apparel"),
        ("07", "Shoes"),
    ):
        m.track(
            f"2026-10-{day}T12:00", "Product Viewed", user="u1", category=category, product={"sku": f"S{day}"}
        )
    m.track("2026-10-02T12:00", "Product Viewed", user="u2", category="Toys")
    m.group("2026-10-01T00:00", "u1", "g1", name="Acme", plan="enterprise")
    m.group("2026-10-02T00:00", "u2", "g1", name="Acme Inc")


@pytest.mark.parametrize("bucket_profiles", [2_000_000, 2], ids=["one-query", "in-slices"])
def test_every_computed_trait_kind_with_window_edges(
    monkeypatch: pytest.MonkeyPatch,
    bucket_profiles: int,
    tmp_path: Path,
    compute_engine: ComputeEngine,
    messages: Messages,
) -> None:
    monkeypatch.setattr(traits_module, "BUCKET_PROFILES", bucket_profiles)
    _history(messages)
    pipeline = run(make_workspace(tmp_path, TRAITS), compute_engine, messages, "2026-10-10T00:00")
    traits = by_profile(pipeline, "computed_traits")
    assert len(traits) == 3
    u1 = traits[U1]
    assert (u1["orders"], u1["orders_7d"], u1["big_orders"]) == (3, 2, 1)
    assert (u1["revenue_sum"], u1["revenue_min_7d"], u1["revenue_max"]) == (220, 20, 150)
    assert u1["revenue_avg"] == pytest.approx(220 / 3)
    assert (u1["fav_category"], u1["first_category"], u1["last_category"]) == ("Shoes", "Books", "Shoes")
    assert list(u1["categories"]) == ["Apparel", "Books"]
    assert u1["nested_sku"] == "S07"
    assert (u1["k"], traits[U2]["k"], traits[U3]["k"]) == (5, 1, 0)  # a trait may be named like any column
    u2, u3 = traits[U2], traits[U3]
    assert (u2["fav_category"], list(u2["categories"]), u2["orders"]) == (None, ["Toys"], 0)
    assert (u3["orders"], u3["revenue_sum"], u3["revenue_avg"], u3["categories"]) == (0, 0, None, None)


def test_custom_account_and_sql_traits(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    _history(messages)
    pipeline = run(make_workspace(tmp_path, TRAITS), compute_engine, messages, "2026-10-10T00:00")
    custom = by_profile(pipeline, "custom_traits")
    assert {p: (r["plan"], r["address.city"]) for p, r in custom.items()} == {
        U1: ("pro", "Leeds"),
        U3: ("free", None),
    }
    accounts = by_profile(pipeline, "account_traits")
    assert {g: (r["name"], r["plan"]) for g, r in accounts.items()} == {"g1": ("Acme Inc", "enterprise")}
    assert by_profile(pipeline, "account_computed_traits")["g1"]["acct_revenue"] == 220
    assert {p: r["tier"] for p, r in by_profile(pipeline, "sqlt_tier").items()} == {U1: "gold"}


def test_sql_trait_with_two_rows_for_one_profile_is_an_error(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    extra = """
traits:
  sql:
    - key: vip
      identifier: email
      query: "SELECT 'a@x.com' AS email, 'yes' AS vip UNION ALL SELECT ' A@X.com', 'no' AS vip"
"""
    messages.identify("2026-10-01T00:00", user="u1", email="a@x.com")
    workspace = make_workspace(tmp_path, extra)
    with pytest.raises(
        SqlTraitError,
        match=r"SQL trait 'vip': 1 profiles have more than one row, e.g. profile_id \d+ \(2 rows\)",
    ):
        run(workspace, compute_engine, messages, "2026-10-10T00:00")


def test_sql_trait_missing_column_is_reported(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    extra = """
traits:
  sql:
    - {key: vip, identifier: user_id, query: "SELECT user_id FROM identifies"}
"""
    messages.identify("2026-10-01T00:00", user="u1")
    with pytest.raises(SqlTraitError, match="returns no column 'vip'"):
        run(make_workspace(tmp_path, extra), compute_engine, messages, "2026-10-10T00:00")


def test_traits_need_profiles_at_the_same_as_of(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    from activation_pipeline.compute.incremental import StageOrderError

    pipeline = run(make_workspace(tmp_path, TRAITS), compute_engine, messages, "2026-10-10T00:00")
    with pytest.raises(StageOrderError, match="materialise profiles"):
        pipeline.computed_traits(at("2026-10-11T00:00"))


def test_sql_trait_of_several_statements_is_refused(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    extra = """
traits:
  sql:
    - {key: vip, identifier: user_id, query: "SELECT user_id, 'y' AS vip FROM identifies; DROP TABLE identifies"}
"""
    messages.identify("2026-10-01T00:00", user="u1")
    with pytest.raises(SqlTraitError, match="must be one SELECT statement, not 2"):
        run(make_workspace(tmp_path, extra), compute_engine, messages, "2026-10-10T00:00")


def test_sql_trait_nan_and_infinity_become_missing(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    extra = """
traits:
  sql:
    - key: score
      identifier: user_id
      query: >
        SELECT user_id, CASE user_id WHEN 'u1' THEN CAST('NaN' AS DOUBLE PRECISION)
        WHEN 'u2' THEN CAST('-Infinity' AS DOUBLE PRECISION) ELSE 2.5 END AS score
        FROM identifies
"""
    for user in ("u1", "u2", "u3"):
        messages.identify("2026-10-01T00:00", user=user)
    pipeline = run(make_workspace(tmp_path, extra), compute_engine, messages, "2026-10-10T00:00")
    assert {p: r["score"] for p, r in by_profile(pipeline, "sqlt_score").items()} == {
        U1: None,
        U2: None,
        U3: 2.5,
    }
