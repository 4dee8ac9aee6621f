"""Audience conditions of every kind, windows at their edges, account audiences, and entered/exited changes."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from activation_pipeline.compute import traits as trait_stage
from activation_pipeline.compute.audiences import _Counts, topological
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import referenced_columns
from activation_pipeline.compute.identity import profile_id_for
from activation_pipeline.compute.schema import build_tables

from .conftest import Messages, at, make_workspace, members, run

AUDIENCES = """
traits:
  custom: [plan, name]
  account: [plan]
  computed:
    - {key: orders, type: counter, event: Order Completed}
    - {key: categories, type: unique_list, event: Product Viewed, property: category}
audiences:
  - {key: buyers_3_in_7d, where: {event: Order Completed, within: 7d, at_least: 3}}
  - {key: bought_7d, where: {event: Order Completed, within: 7d}}
  - key: lapsed
    where: {all: [{trait: orders, op: ">=", value: 1}, {event: Order Completed, within: 7d, at_most: 0}]}
  - {key: big_buyers, where: {event: Order Completed, where: [{property: revenue, op: ">", value: 100}]}}
  - {key: paying, where: {trait: plan, op: in, value: [pro, enterprise]}}
  - {key: not_free, where: {trait: plan, op: "!=", value: free}}
  - {key: not_in_free, where: {trait: plan, op: not_in, value: [free]}}
  - {key: name_starts_a, where: {trait: name, op: starts_with, value: "A"}}
  - {key: name_ends_n, where: {trait: name, op: ends_with, value: "n"}}
  - {key: name_has_pct, where: {trait: name, op: contains, value: "%"}}
  - {key: name_lacks_b, where: {trait: name, op: not_contains, value: "B"}}
  - {key: no_plan, where: {trait: plan, op: not_exists}}
  - {key: has_plan, where: {trait: plan, op: exists}}
  - {key: many_orders, where: {trait: orders, op: ">", value: 1}}
  - {key: few_orders, where: {trait: orders, op: "<=", value: 1}}
  - {key: likes_books, where: {trait: categories, op: contains, value: Books}}
  - key: paying_small
    where: {all: [{audience: paying}, {not: {audience: big_buyers}}]}
  - key: browsing_or_free
    where: {any: [{event: Product Viewed, at_least: 1}, {trait: plan, op: "=", value: free}]}
  - key: new_buyers
    historical: false
    created_at: 2026-10-05T00:00:00Z
    where: {event: Order Completed}
  - key: enterprise_accounts
    level: account
    where: {all: [{trait: plan, op: "=", value: enterprise}, {event: Order Completed, at_least: 2}]}
"""

U = {u: profile_id_for(("user_id", u)) for u in ("u1", "u2", "u3", "u4", "u5", "u6", "u7")}


def _people(m: Messages) -> None:
    m.identify("2026-09-01T00:00", user="u1", plan="pro", name="Ann")
    m.identify("2026-09-01T00:00", user="u2", plan="free", name="Bob%")
    m.identify("2026-09-01T00:00", user="u3", name="Al")
    m.identify("2026-09-01T00:00", user="u4", plan="enterprise", name="Dee")
    m.identify("2026-09-01T00:00", user="u5", plan="enterprise", name="Bea")
    m.identify("2026-09-01T00:00", user="u6", plan="free", name="Cy")
    m.identify("2026-09-01T00:00", user="u7", plan="free", name="Ed")
    for when, revenue in (("2026-10-08T00:00", 50), ("2026-10-09T00:00", 150), ("2026-10-09T12:00", 20)):
        m.track(when, "Order Completed", user="u1", revenue=revenue)
    m.track("2026-10-01T00:00", "Order Completed", user="u2", revenue=80)
    m.track("2026-10-06T00:00", "Order Completed", user="u4", revenue=10)
    m.track("2026-10-04T23:59", "Order Completed", user="u5", revenue=10)
    m.track("2026-10-03T00:00", "Order Completed", user="u6", revenue=5)  # exactly 7 days before as-of
    m.track("2026-10-03T00:00:01", "Order Completed", user="u7", revenue=5)  # just inside
    m.track("2026-10-02T00:00", "Product Viewed", user="u1", category="Books")
    m.track("2026-10-02T00:00", "Product Viewed", user="u3", category="Shoes")
    m.group("2026-09-02T00:00", "u4", "g1", plan="enterprise")
    m.group("2026-09-02T00:00", "u5", "g1")
    m.group("2026-09-02T00:00", "u1", "g2", plan="free")


EXPECTED = {
    "buyers_3_in_7d": {"u1"},
    "bought_7d": {"u1", "u4", "u5", "u7"},
    "lapsed": {"u2", "u6"},
    "big_buyers": {"u1"},
    "paying": {"u1", "u4", "u5"},
    "not_free": {"u1", "u4", "u5"},
    "not_in_free": {"u1", "u4", "u5"},
    "name_starts_a": {"u1", "u3"},
    "name_ends_n": {"u1"},
    "name_has_pct": {"u2"},
    "name_lacks_b": {"u1", "u3", "u4", "u6", "u7"},
    "no_plan": {"u3"},
    "has_plan": {"u1", "u2", "u4", "u5", "u6", "u7"},
    "many_orders": {"u1"},
    "few_orders": {"u2", "u3", "u4", "u5", "u6", "u7"},
    "likes_books": {"u1"},
    "paying_small": {"u4", "u5"},
    "browsing_or_free": {"u1", "u2", "u3", "u6", "u7"},
    "new_buyers": {"u1", "u4"},
    "enterprise_accounts": {"u4", "u5"},
}


@pytest.mark.parametrize(
    ("full", "bucket_profiles"),
    [(True, 1_000_000), (True, 3), (False, 1_000_000)],
    ids=["full", "full-in-slices", "incremental"],
)
def test_every_condition_kind(
    tmp_path: Path,
    compute_engine: ComputeEngine,
    messages: Messages,
    full: bool,
    bucket_profiles: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(trait_stage, "BUCKET_PROFILES", bucket_profiles)
    _people(messages)
    workspace = make_workspace(tmp_path, AUDIENCES)
    pipeline = run(workspace, compute_engine, messages, "2026-10-01T00:00")
    pipeline.evaluate(at("2026-10-10T00:00"), full=full)
    names = {v: k for k, v in U.items()}
    got = {a.key: {names[p] for p in members(pipeline, a.key)} for a in workspace.audiences}
    assert got == EXPECTED
    qualified = pipeline.read(
        sa.text(f'SELECT audience_key, group_id FROM "{compute_engine.schema}".account_audience_accounts')
    )
    assert qualified.to_pylist() == [{"audience_key": "enterprise_accounts", "group_id": "g1"}]


def test_audiences_referring_to_others_come_after_them(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path, AUDIENCES)
    order = [a.key for a in topological(list(reversed(workspace.audiences)))]
    assert order.index("paying") < order.index("paying_small") and order.index("big_buyers") < order.index(
        "paying_small"
    )


CHANGES = """
audiences:
  - {key: viewers, where: {event: Product Viewed, within: 30d}}
"""


def test_entered_exited_and_merges_do_not_reenter(
    tmp_path: Path, compute_engine: ComputeEngine, messages: Messages
) -> None:
    m = messages
    m.track("2026-10-01T00:00", "Product Viewed", anon="a8")  # member as an anonymous profile
    m.track("2026-10-01T00:00", "Product Viewed", anon="a9")  # two members that merge later
    m.identify("2026-10-01T01:00", user="u9", anon="a10")
    m.track("2026-10-01T02:00", "Product Viewed", user="u9")
    m.track("2026-10-01T00:00", "Signed Up", anon="a11")  # not a member; merges with a member
    m.track("2026-10-01T01:00", "Product Viewed", user="u11")
    m.track("2026-09-20T00:00", "Product Viewed", user="u12")  # falls out of the window
    m.track("2026-10-02T00:00", "Signed Up", user="u13")  # becomes a member later
    m.identify("2026-10-12T00:00", user="u8", anon="a8")  # a8 gains an identifier
    m.alias("2026-10-12T00:00", user="u9", previous="a9")  # u9 merges into the older a9
    m.alias("2026-10-12T00:00", user="u11", previous="a11")  # u11 merges into the older a11
    m.track("2026-10-12T00:00", "Product Viewed", user="u13")
    workspace = make_workspace(tmp_path, CHANGES)
    pipeline = run(workspace, compute_engine, messages, "2026-10-10T00:00")
    first = {(c["change"], c["profile_id"]) for c in pipeline.changes(at("2026-10-10T00:00")).to_pylist()}
    a8, a9, u9 = (
        profile_id_for(k) for k in (("anonymous_id", "a8"), ("anonymous_id", "a9"), ("user_id", "u9"))
    )
    u11, u12, u13 = (profile_id_for(("user_id", u)) for u in ("u11", "u12", "u13"))
    assert first == {("entered", p) for p in (a8, a9, u9, u11, u12)}
    summary = pipeline.evaluate(at("2026-10-20T00:00"))
    assert summary.audiences.mode == "incremental"
    second = {(c["change"], c["profile_id"]) for c in pipeline.changes(at("2026-10-20T00:00")).to_pylist()}
    assert second == {("exited", u12), ("entered", u13)}
    a11 = profile_id_for(("anonymous_id", "a11"))
    assert members(pipeline, "viewers") == {a8, a9, a11, u13}
    [result] = summary.audiences.audiences
    assert (result.size, result.previous_size, result.entered, result.exited) == (4, 5, 1, 1)
    again = pipeline.evaluate(at("2026-10-20T00:00"), full=True)  # a re-run at the same time is stable
    assert {
        (c["change"], c["profile_id"]) for c in pipeline.changes(at("2026-10-20T00:00")).to_pylist()
    } == second
    assert again.audiences.audiences == summary.audiences.audiences


def test_event_counts_read_back_only_as_far_as_their_window(tmp_path: Path) -> None:
    """Event conditions are counted by one aggregation per event and window, bounded below by the window
    (time-sorted events let the scan skip older row groups); one without a window reads every event up to as-of."""
    workspace = make_workspace(
        tmp_path,
        """
audiences:
  - {key: recent, where: {event: Order Completed, within: 7d}}
  - {key: recent_big, where: {event: Order Completed, within: 7d, where: [{property: revenue, op: ">", value: 100}]}}
  - {key: orders, where: {event: Order Completed, at_least: 1}}
""",
    )
    tables = build_tables("s")
    for column in referenced_columns(workspace):
        tables.events.append_column(sa.Column(column.name, column.sa_type))
    e, s = tables.events.c, tables.identity_sets.c
    counts = _Counts(workspace.audiences)
    as_of = at("2026-11-01T00:00").replace(tzinfo=None)
    source = tables.events.join(tables.identity_sets, s.set_hash == e.set_hash)
    queries = counts.queries(e, s.profile_id, source, sa.true(), as_of)
    assert [len(names) for names, _ in queries] == [2, 1]  # the two 7-day conditions share one scan
    recent, orders = (str(q.compile(compile_kwargs={"literal_binds": True})) for _, q in queries)
    assert "s.events.timestamp > '2026-10-25 00:00:00'" in recent
    assert "s.events.timestamp <= '2026-11-01 00:00:00'" in orders and "s.events.timestamp >" not in orders
