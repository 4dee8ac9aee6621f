"""Predictive trait configuration: shortcuts, and every problem reported at once with its path."""

from __future__ import annotations

from datetime import timedelta

from activation_pipeline.config import validate_text

BASE = """
workspace: ws
sources: {events: {path: events/}}
traits:
  custom: [plan]
  computed:
    - {key: orders, type: counter, event: Order Completed}
    - {key: fav, type: most_frequent, event: Product Viewed, property: category}
    - {key: seen, type: unique_list, event: Product Viewed, property: category}
"""


def _problems(extra: str) -> dict[str, str]:
    _, problems = validate_text(BASE + extra)
    return {p.path: p.message for p in problems}


def test_shortcuts_fill_goal_kind_and_horizon() -> None:
    """The three shortcuts; keys written in the file win over the shortcut's."""
    workspace, problems = validate_text(
        BASE
        + """
  predictive:
    - {key: buy, shortcut: likelihood_to_purchase}
    - {key: churn, shortcut: likelihood_to_churn, horizon: 14d}
    - {key: ltv, shortcut: predicted_ltv}
audiences:
  - {key: top, where: {trait: buy_percentile, op: ">=", value: 90}}
"""
    )
    assert workspace is not None, [str(p) for p in problems]
    buy, churn, ltv = workspace.traits.predictive
    assert (buy.kind, buy.goal.event, buy.horizon, buy.features.monetary) == (
        "likelihood",
        "Order Completed",
        timedelta(days=30),
        "revenue",
    )
    assert (churn.goal.absent, churn.goal.event, churn.horizon) == (True, None, timedelta(days=14))
    assert (ltv.kind, ltv.goal.property, ltv.horizon) == ("value", "revenue", timedelta(days=90))
    assert buy.trait_keys == ["buy", "buy_percentile"]


def test_every_problem_with_its_path() -> None:
    """Shape problems, references and population rules are all listed, each at its place."""
    problems = _problems(
        """
  predictive:
    - {key: v, kind: value, goal: {event: Order Completed}, horizon: 30d}
    - {key: w, kind: likelihood, goal: {where: [{property: plan, op: "=", value: pro}]}, horizon: 30d}
    - {key: s, shortcut: likelihood_to_win}
    - key: p
      shortcut: likelihood_to_purchase
      features: {traits: [orders, fav, plan, seen, nope]}
      population: {all: [{event: Product Viewed, within: 30d}, {trait: plan, op: "=", value: pro}]}
    - {key: orders, shortcut: predicted_ltv, horizon: 0d}
audiences:
  - {key: a, where: {trait: p_percentile, op: ">", value: 50}}
"""
    )
    assert "goal.property" in problems["traits.predictive[0]"]
    assert "need an 'event'" in problems["traits.predictive[1].goal"]
    assert "likelihood_to_purchase" in problems["traits.predictive[2].shortcut"]
    # numbers (a counter) and categories (a most frequent value, a custom trait) are features; lists are not
    assert not any(f"traits.predictive[3].features.traits[{i}]" in problems for i in range(3)), problems
    assert "other than unique_list" in problems["traits.predictive[3].features.traits[3]"]
    assert "other than unique_list" in problems["traits.predictive[3].features.traits[4]"]
    assert "event conditions" in problems["traits.predictive[3].population.all[1]"]
    assert "longer than zero" in problems["traits.predictive[4].horizon"]
    assert not any(path.startswith("audiences") for path in problems), problems


def test_keys_and_percentiles_are_trait_keys() -> None:
    """A predictive key and its percentile clash with other trait keys, and are usable in enrichment."""
    problems = _problems(
        """
  predictive:
    - {key: orders, shortcut: likelihood_to_purchase}
    - {key: plan_x, shortcut: likelihood_to_churn}
  sql:
    - {key: plan_x_percentile, query: "select 1", identifier: user_id}
destinations:
  - {id: hook, type: braze, settings: {base_url: "https://b.example", api_key: {env: K}}}
connections:
  - {source: "trait:plan_x", destination: hook, setup: customized, trait_enrichment: [plan_x_percentile, nope]}
"""
    )
    assert "already used by traits.computed[0].key" in problems["traits.predictive[0].key"]
    assert "already used by traits.sql[0].key" in problems["traits.predictive[1].key"]
    assert "unknown trait 'nope'" in problems["connections[0].trait_enrichment[1].trait"]
    assert "connections[0].source" not in problems
    assert "connections[0].trait_enrichment[0].trait" not in problems
