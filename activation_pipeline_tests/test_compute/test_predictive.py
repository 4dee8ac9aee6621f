"""Predictive traits: features at window edges, no label leakage, determinism, the planted signal found and
shuffled labels at chance, and the scores used by an audience and in a Trait Enrichment payload."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_event_change
from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline
from activation_pipeline.compute.predictive.features import (
    FeatureSpec,
    feature_query,
    read_table,
    training_query,
)
from activation_pipeline.compute.predictive.model import matrix, train
from activation_pipeline.config import Workspace
from activation_pipeline.sync.compute_view import ResultsView, export_results
from activation_pipeline.synthetic.generator import GeneratorSpec, write_events
from activation_pipeline_tests.test_compute.conftest import (
    PG_URL,
    Messages,
    at,
    by_profile,
    drop_schemas,
    make_workspace,
    members,
    profile_of,
)

AS_OF = "2026-10-31T00:00"
SEVEN_DAYS = timedelta(days=7)
TIMINGS = ("training_seconds", "features_seconds")

PREDICTIVE = """
traits:
  predictive:
    - key: buys_soon
      kind: likelihood
      goal: {event: Order Completed}
      horizon: 10d
      features: {events: [Product Viewed, Order Completed], windows: [7d], monetary: revenue}
"""


def _rows(engine: ComputeEngine, query: Any) -> pa.Table:
    with engine.begin() as conn:
        return read_table(conn, query)


def _by_id(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {r["profile_id"]: r for r in table.to_pylist()}


def _resolved(
    workspace: Workspace, engine: ComputeEngine, messages: Messages, *, write: bool = True
) -> ComputePipeline:
    """Land the messages and resolve profiles as of AS_OF (the stage features read)."""
    if write:
        messages.write()
    pipeline = ComputePipeline(workspace, engine)
    pipeline.land()
    pipeline.resolve_identities(at(AS_OF))
    return pipeline


def _spec(workspace: Workspace) -> FeatureSpec:
    features = workspace.traits.predictive[0].features
    return FeatureSpec(
        tuple(features.events), tuple(features.windows), features.monetary, tuple(features.traits)
    )


def test_features_at_window_edges(compute_engine: ComputeEngine, tmp_path: Path, messages: Messages) -> None:
    """A window (t - W, t] holds an event 1 s after t - W and one at t, not one at t - W nor after t."""
    workspace = make_workspace(tmp_path, PREDICTIVE)
    messages.identify("2026-10-01T00:00", user="u1")
    messages.track("2026-10-24T00:00", "Product Viewed", user="u1")  # exactly t - 7d: out of the window
    messages.track("2026-10-24T00:00:01", "Product Viewed", user="u1")
    messages.track("2026-10-31T00:00", "Order Completed", user="u1", revenue=40)  # exactly t: in
    messages.track("2026-10-31T00:00:01", "Order Completed", user="u1", revenue=900)  # after t: never
    messages.track("2026-10-10T12:00", "Order Completed", user="u1", revenue=10)
    _resolved(workspace, compute_engine, messages)
    spec = _spec(workspace)
    query = feature_query(
        compute_engine, workspace, workspace.traits.predictive[0], spec, at(AS_OF).replace(tzinfo=None)
    )
    (row,) = _rows(compute_engine, query).to_pylist()
    week = "604800s"
    assert row[f"event0_{week}"] == 1 and row["event0_all"] == 2  # Product Viewed
    assert row[f"event1_{week}"] == 1 and row["event1_all"] == 2  # Order Completed (not the one after t)
    assert row[f"events_{week}"] == 2 and row["events_all"] == 4
    assert row[f"days_{week}"] == 2 and row["days_all"] == 3  # 10-24, 10-31 (and 10-10)
    assert row[f"monetary_{week}"] == 40 and row["monetary_all"] == 50
    assert row["recency_days"] == 0
    assert row["tenure_days"] == 30  # the identify on 10-01 counts for tenure, not for activity
    assert set(row) == {"profile_id", *spec.names()}


def test_training_features_never_see_the_label_span(
    compute_engine: ComputeEngine, tmp_path: Path, messages: Messages
) -> None:
    """Features are as of as_of - horizon: events after it change the labels, never the training features."""
    workspace = make_workspace(tmp_path, PREDICTIVE)
    trait = workspace.traits.predictive[0]
    as_of = at(AS_OF).replace(tzinfo=None)
    cutoff = as_of - trait.horizon  # 2026-10-21T00:00
    for user in ("u1", "u2", "u3"):
        messages.track("2026-10-15T09:00", "Product Viewed", user=user)
    messages.track("2026-10-21T00:00", "Order Completed", user="u1", revenue=5)  # at the cutoff: a feature
    pipeline = _resolved(workspace, compute_engine, messages)
    spec = _spec(workspace)
    before = _rows(compute_engine, training_query(compute_engine, workspace, trait, spec, cutoff, as_of))

    messages.by_day.clear()
    messages.track("2026-10-21T00:00:01", "Order Completed", user="u2", revenue=70)  # just after: a label
    for day in range(22, 31):
        messages.track(f"2026-10-{day}T10:00", "Product Viewed", user="u3")
    messages.track("2026-10-31T00:00", "Order Completed", user="u3", revenue=30)  # at as_of: a label
    late = [line for lines in messages.by_day.values() for line in lines]
    (tmp_path / "events" / "late.jsonl").write_text("\n".join(late) + "\n")  # the first files stay as landed
    _resolved(workspace, compute_engine, messages, write=False)
    after = _rows(compute_engine, training_query(compute_engine, workspace, trait, spec, cutoff, as_of))

    assert before.drop(["label"]).equals(after.drop(["label"]))
    u1, u2, u3 = (profile_of(pipeline, "user_id", u) for u in ("u1", "u2", "u3"))
    labels = {r["profile_id"]: r["label"] for r in after.to_pylist()}
    assert labels == {u1: 0.0, u2: 1.0, u3: 1.0}
    assert _by_id(after)[u1]["event1_all"] == 1  # the order at the cutoff is a feature, not a label
    assert {r["label"] for r in before.to_pylist()} == {0.0}


# ------------------------------------------------------------------------------------ generated workspaces

END = datetime(2026, 11, 1, tzinfo=UTC)

SAMPLE_LIKE = """
traits:
  computed:
    - {key: orders_count, type: counter, event: Order Completed}
  predictive:
    - {key: purchase_score, shortcut: likelihood_to_purchase, features: {traits: [orders_count]}}
audiences:
  - {key: likely_buyers, where: {trait: purchase_score_percentile, op: ">=", value: 90}}
destinations:
  - {id: braze_crm, type: braze, settings: {base_url: "https://rest.example.braze.com", api_key: {env: BRAZE_KEY}}}
connections:
  - source: audience:likely_buyers
    destination: braze_crm
    setup: customized
    trait_enrichment: [{trait: purchase_score, as: purchase_likelihood}, {trait: purchase_score_percentile, as: purchase_percentile}]
"""


def _generated(root: Path, profiles: int, events: int, days: int) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    write_events(GeneratorSpec(profiles=profiles, events=events, days=days, end=END, seed=3), root / "events")
    return make_workspace(root, SAMPLE_LIKE)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ComputePipeline, Any]]:
    """The generator's planted signal, evaluated once on DuckDB (the SQL is shared with PostgreSQL above)."""
    root = tmp_path_factory.mktemp("planted")
    workspace = _generated(root, 3000, 100_000, 120)
    engine = ComputeEngine(url=f"duckdb:///{root / 'compute.duckdb'}", schema="planted")
    pipeline = ComputePipeline(workspace, engine)
    pipeline.land()
    summary = pipeline.evaluate(END)
    yield pipeline, summary
    pipeline.close()


def test_planted_signal_found(planted: tuple[ComputePipeline, Any]) -> None:
    """The model finds the generator's planted signal (wishlists lead to orders): AUC well above chance,
    calibrated in the top decile, with "Wishlist Added" among its ten most important features."""
    _, summary = planted
    (result,) = summary.predictive.traits
    figures = result.figures
    assert result.retrained
    assert figures["auc"] >= 0.78, figures
    assert 0.01 < figures["base_rate"] < 0.2
    assert figures["training_rows"] > 1500 and figures["test_rows"] > 300
    top = figures["calibration"][-1]
    assert top["observed"] > 3 * figures["base_rate"]
    assert any(i["feature"].startswith("Wishlist Added") for i in figures["importances"]), figures[
        "importances"
    ]


def test_shuffled_labels_give_chance(planted: tuple[ComputePipeline, Any]) -> None:
    """The same training rows with their labels shuffled: the held-out AUC falls to about 0.5."""
    pipeline, _ = planted
    workspace, engine = pipeline.workspace, pipeline.engine
    trait = workspace.traits.predictive[0]
    model_spec = _trained_spec(pipeline)
    as_of = END.replace(tzinfo=None)
    data = _rows(engine, training_query(engine, workspace, trait, model_spec, as_of - trait.horizon, as_of))
    real = train(trait.kind, model_spec, data).figures["auc"]
    labels = data.column("label").to_numpy().copy()
    np.random.default_rng(5).shuffle(labels)
    shuffled = train(
        trait.kind,
        model_spec,
        data.set_column(data.schema.get_field_index("label"), "label", pa.array(labels)),
    )
    assert real >= 0.78
    assert abs(shuffled.figures["auc"] - 0.5) < 0.12, shuffled.figures["auc"]


def _trained_spec(pipeline: ComputePipeline) -> FeatureSpec:
    from activation_pipeline.compute.predictive import store

    trait = pipeline.workspace.traits.predictive[0]
    with pipeline.engine.begin() as conn:
        found = store.latest(conn, pipeline.engine, trait, END.replace(tzinfo=None))
    assert found is not None
    return found[0].spec


def test_scores_drive_an_audience_and_a_payload(planted: tuple[ComputePipeline, Any], tmp_path: Path) -> None:
    """The top-decile audience holds exactly the profiles whose percentile is >= 90, and an entering member's
    payload carries the score and percentile under the enrichment names."""
    pipeline, _ = planted
    scores = by_profile(pipeline, "predictive_traits")
    top = {
        pid
        for pid, r in scores.items()
        if r["purchase_score_percentile"] is not None and r["purchase_score_percentile"] >= 90
    }
    scored = [r for r in scores.values() if r["purchase_score"] is not None]
    assert 0.08 * len(scored) <= len(top) <= 0.12 * len(scored)
    assert members(pipeline, "likely_buyers") == top

    export_results(pipeline, tmp_path / "results", END)
    pid = max(top, key=lambda p: scores[p]["purchase_score"])
    profile = ResultsView(tmp_path / "results").profiles([str(pid)])[str(pid)]
    connection = pipeline.workspace.connections[0]
    planned = plan_event_change(Change(ChangeKind.ENTERED, profile, END), connection, space="spa_test")
    assert planned is not None
    traits = planned.records[0].payload["traits"]
    assert traits["likely_buyers"] is True
    assert traits["purchase_likelihood"] == pytest.approx(scores[pid]["purchase_score"])
    assert traits["purchase_percentile"] == scores[pid]["purchase_score_percentile"] == 100


def test_deterministic_and_retrained_on_cadence(compute_engine: ComputeEngine, tmp_path: Path) -> None:
    """Two engines, same events, same time: identical scores and figures; the model is reused until it is
    `retrain` old, and retrained on request."""
    workspace = _generated(tmp_path / "ws", 300, 12_000, 60)
    duckdb = compute_engine.is_duckdb
    second = ComputeEngine(
        url=f"duckdb:///{tmp_path / 'second.duckdb'}" if duckdb else PG_URL,
        schema=f"{compute_engine.schema}_2",
    )
    results = []
    try:
        for engine in (compute_engine, second):
            pipeline = ComputePipeline(workspace, engine)
            pipeline.land()
            figures = dict(pipeline.evaluate(END).predictive.traits[0].figures)
            for timing in TIMINGS:
                figures.pop(timing)
            results.append((by_profile(pipeline, "predictive_traits"), figures))
    finally:
        second.dispose()
        if not duckdb:
            drop_schemas(PG_URL, second.schema)
    assert results[0] == results[1]
    assert results[0][1]["training_rows"] > 0

    pipeline = ComputePipeline(workspace, compute_engine)
    later = pipeline.evaluate(END + timedelta(days=1)).predictive.traits[0]
    assert not later.retrained and later.trained_as_of == END.replace(tzinfo=None)
    week = pipeline.evaluate(END + timedelta(days=7)).predictive.traits[0]
    assert week.retrained
    asked = pipeline.predictive_traits(END + timedelta(days=7), retrain=True).traits[0]
    assert asked.retrained and asked.figures == week.figures | {t: asked.figures[t] for t in TIMINGS}


CATEGORICAL = """
traits:
  custom: [plan]
  computed:
    - {key: favourite, type: most_frequent, event: Product Viewed, property: category}
  predictive:
    - key: buys_soon
      kind: likelihood
      goal: {event: Order Completed}
      horizon: 10d
      features: {events: [Product Viewed], windows: [7d], traits: [plan, favourite]}
"""


def test_categorical_traits_as_of_the_time(
    compute_engine: ComputeEngine, tmp_path: Path, messages: Messages
) -> None:
    """A custom trait and a most frequent value are categories as of the features' time (a plan set after the
    cutoff is not seen in training); the model learns from the category, and a value it never saw in training
    scores as "other", a missing one as missing."""
    workspace = make_workspace(tmp_path, CATEGORICAL)
    trait = workspace.traits.predictive[0]
    as_of = at(AS_OF).replace(tzinfo=None)
    for n in range(240):
        plan = ("free", "pro", "team")[n % 3]
        if n != 239:
            messages.identify("2026-10-01T00:00", user=f"u{n}", plan=plan)
        messages.track("2026-10-02T00:00", "Product Viewed", user=f"u{n}", category=("shoes", "hats")[n % 2])
        if (plan == "pro") != (n % 31 == 0):  # the plan decides, with a few exceptions
            messages.track("2026-10-25T00:00", "Order Completed", user=f"u{n}", revenue=20)
    messages.identify("2026-10-26T00:00", user="u0", plan="enterprise")  # after the cutoff (10-21)
    for day in (26, 27):
        messages.track(f"2026-10-{day}T00:00", "Product Viewed", user="u0", category="hats")
    pipeline = _resolved(workspace, compute_engine, messages)
    spec = FeatureSpec(tuple(trait.features.events), (SEVEN_DAYS,), None, (), ("plan", "favourite"))
    assert spec.names()[-2:] == ["category_plan", "category_favourite"]
    data = _rows(
        compute_engine, training_query(compute_engine, workspace, trait, spec, as_of - trait.horizon, as_of)
    )
    u0, u239 = profile_of(pipeline, "user_id", "u0"), profile_of(pipeline, "user_id", "u239")
    training = _by_id(data)
    assert (training[u0]["category_plan"], training[u0]["category_favourite"]) == ("free", "shoes")
    scoring = _rows(compute_engine, feature_query(compute_engine, workspace, trait, spec, as_of))
    now = _by_id(scoring)
    assert (now[u0]["category_plan"], now[u0]["category_favourite"]) == ("enterprise", "hats")
    assert now[u239]["category_plan"] in (None, "")  # never identified (PostgreSQL's CSV has no NULL text)

    model = train(trait.kind, spec, data)
    assert set(model.spec.vocabulary[0]) == {"free", "pro", "team"}
    assert set(model.spec.vocabulary[1]) == {"shoes", "hats"}
    assert model.figures["auc"] >= 0.85, model.figures
    assert model.figures["importances"][0]["feature"] == "plan (category)", model.figures["importances"]
    encoded = {
        pid: row
        for pid, row in zip(
            scoring.column("profile_id").to_pylist(), matrix(scoring, model.spec)[:, -2].tolist(), strict=True
        )
    }
    assert encoded[u0] == len(model.spec.vocabulary[0])  # "enterprise": other
    assert np.isnan(encoded[u239])
    predicted = model.predict(matrix(scoring, model.spec))
    scores = dict(zip(scoring.column("profile_id").to_pylist(), predicted, strict=True))
    pro = profile_of(pipeline, "user_id", "u1")
    assert scores[pro] > 2 * scores[profile_of(pipeline, "user_id", "u2")]  # pro against team


def test_training_sample_is_taken_in_sql(planted: tuple[ComputePipeline, Any]) -> None:
    """A sampled training query (every k-th profile id) holds exactly those profiles' rows of the full one,
    features and labels alike, so sampling never changes what a profile's row says."""
    pipeline, _ = planted
    workspace, engine = pipeline.workspace, pipeline.engine
    trait = workspace.traits.predictive[0]
    spec = _trained_spec(pipeline)
    as_of = END.replace(tzinfo=None)
    cutoff = as_of - trait.horizon
    full = _rows(engine, training_query(engine, workspace, trait, spec, cutoff, as_of))
    sampled = _rows(engine, training_query(engine, workspace, trait, spec, cutoff, as_of, every=3))
    expected = [r for r in full.to_pylist() if r["profile_id"] % 3 == 0]
    assert 0.25 * full.num_rows < len(expected) < 0.42 * full.num_rows
    assert sampled.to_pylist() == expected


POPULATION = """
traits:
  predictive:
    - key: ltv
      shortcut: predicted_ltv
      horizon: 10d
      features: {events: [Product Viewed], windows: [7d], monetary: revenue}
      population:
        all:
          - {event: Product Viewed, within: 7d}
          - {not: {event: Order Completed, at_least: 2}}
"""


def test_population_as_of_the_time(compute_engine: ComputeEngine, tmp_path: Path, messages: Messages) -> None:
    """The population condition is evaluated as of the features' time: as of the cutoff for training and as of
    now for scoring, with its window and `not`; a value model's label is the goal property's sum."""
    workspace = make_workspace(tmp_path, POPULATION)
    trait = workspace.traits.predictive[0]
    as_of = at(AS_OF).replace(tzinfo=None)
    messages.track("2026-10-28T00:00", "Product Viewed", user="u1")  # viewed recently only: scored
    messages.track("2026-10-15T00:00", "Product Viewed", user="u2")  # in the week before the cutoff (10-21)
    messages.track("2026-10-28T00:00", "Product Viewed", user="u2")
    messages.track("2026-10-25T00:00", "Order Completed", user="u2", revenue=30)
    messages.track(
        "2026-10-26T00:00", "Order Completed", user="u2", revenue=12.5
    )  # two orders after the cutoff
    messages.track("2026-10-29T00:00", "Product Viewed", user="u3")
    for day in ("01", "02"):
        messages.track(f"2026-10-{day}T00:00", "Order Completed", user="u3", revenue=5)  # two orders: never
    messages.track("2026-10-01T00:00", "Product Viewed", user="u4")  # not within 7d of either time
    pipeline = _resolved(workspace, compute_engine, messages)
    u1, u2 = (profile_of(pipeline, "user_id", u) for u in ("u1", "u2"))
    spec = _spec(workspace)
    scored = _rows(compute_engine, feature_query(compute_engine, workspace, trait, spec, as_of))
    assert set(scored.column("profile_id").to_pylist()) == {u1}  # u2 has two orders by now
    training = _rows(
        compute_engine, training_query(compute_engine, workspace, trait, spec, as_of - trait.horizon, as_of)
    )
    assert {r["profile_id"]: r["label"] for r in training.to_pylist()} == {u2: 42.5}
