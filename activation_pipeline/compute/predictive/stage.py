"""The predictive trait stage: train each model when it is due, score the population as of the run's time,
and write every score and its percentile to the `predictive_traits` table (one row per profile).

A model is retrained when none of its configuration exists, when the newest is older than the trait's
`retrain` age, or on request; otherwise the newest is reused. Scores change with time (recency moves), so
every run scores everyone; profiles whose score or percentile changed are passed to the audience stage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.event_columns import ensure_event_columns
from activation_pipeline.compute.incremental import (
    PREDICTIVE_STAGE,
    note_changed_profiles,
    require_identity,
    stage_done,
)
from activation_pipeline.compute.predictive import store
from activation_pipeline.compute.predictive.features import (
    FeatureSpec,
    choose_events,
    feature_query,
    read_table,
    training_query,
)
from activation_pipeline.compute.predictive.model import TrainedModel, matrix, train
from activation_pipeline.compute.schema import PREDICTIVE_TABLE
from activation_pipeline.compute.scratch import scratch_table
from activation_pipeline.compute.sqlutil import create_table_as, drop_table, rename_table
from activation_pipeline.config import Workspace
from activation_pipeline.config.models import (
    FirstValueTrait,
    LastValueTrait,
    MostFrequentTrait,
    PredictiveTrait,
)

MIN_TRAINING_ROWS = 20
SCORING_ROWS = 200_000
"""Profiles scored per batch (bounds the float32 feature matrix in memory)."""


@dataclass(frozen=True)
class PredictiveResult:
    """One predictive trait's run: whether it was retrained, its model's figures, and how many were scored."""

    key: str
    retrained: bool
    trained_as_of: datetime
    scored: int
    figures: dict[str, Any]
    scoring_seconds: float


@dataclass(frozen=True)
class PredictiveSummary:
    """Results of one predictive stage."""

    traits: list[PredictiveResult] = field(default_factory=list)
    changed: int = 0


def _train(
    conn: sa.Connection, engine: ComputeEngine, workspace: Workspace, trait: PredictiveTrait, as_of: datetime
) -> TrainedModel | None:
    """Train and record a model as of `as_of`; None while the events do not reach back to the cutoff."""
    cutoff = as_of - trait.horizon
    text = categorical_traits(workspace)
    spec = FeatureSpec(
        events=tuple(choose_events(conn, engine, trait, cutoff)),
        windows=tuple(sorted(trait.features.windows)),
        monetary=trait.features.monetary,
        traits=tuple(k for k in trait.features.traits if k not in text),
        categorical=tuple(k for k in trait.features.traits if k in text),
    )
    # Sampling happens in the query (a profile-id modulus), so the features of profiles that would be
    # dropped are never computed; the modulus comes from the profiles existing at the cutoff (an upper
    # bound of the population then), and `_sample` trims what the population condition left over.
    p = engine.tables.profiles
    profiles = int(conn.execute(sa.select(sa.func.count()).where(p.c.created_at <= cutoff)).scalar() or 0)
    every = max(1, -(-profiles // trait.max_training_rows))
    started = time.perf_counter()
    data = read_table(conn, training_query(engine, workspace, trait, spec, cutoff, as_of, every))
    features_seconds = round(time.perf_counter() - started, 3)
    if data.num_rows < MIN_TRAINING_ROWS:
        return None
    sampled = _sample(data, trait.max_training_rows)
    model = train(trait.kind, spec, sampled)
    model.figures.update(
        cutoff=cutoff.isoformat(),
        horizon_days=trait.horizon.total_seconds() / 86400,
        profiles_at_cutoff=profiles,
        sampled_every=every,
        features_seconds=features_seconds,
        population=data.num_rows * every,
    )
    store.save(conn, engine, trait, model, as_of, cutoff)
    return model


def categorical_traits(workspace: Workspace) -> set[str]:
    """Trait keys a predictive model reads as categories: custom traits and text-valued computed traits."""
    text = {
        t.key
        for t in workspace.traits.computed
        if isinstance(t, MostFrequentTrait | FirstValueTrait | LastValueTrait)
    }
    return text | set(workspace.traits.custom)


def _sample(data: pa.Table, limit: int) -> pa.Table:
    """At most `limit` rows, every k-th in profile id order (deterministic)."""
    if data.num_rows <= limit:
        return data
    step = -(-data.num_rows // limit)
    return data.take(pa.array(np.arange(0, data.num_rows, step)))


def _score(
    conn: sa.Connection,
    engine: ComputeEngine,
    workspace: Workspace,
    trait: PredictiveTrait,
    model: TrainedModel | None,
    as_of: datetime,
) -> str:
    """Score the population as of `as_of` into a scratch table (profile_id, score; empty without a model)."""
    ids: list[np.ndarray] = [np.zeros(0, np.int64)]
    scores: list[np.ndarray] = [np.zeros(0)]
    if model is not None:
        features = read_table(conn, feature_query(engine, workspace, trait, model.spec, as_of))
        for batch in features.to_batches(SCORING_ROWS):
            ids.append(batch.column("profile_id").to_numpy(zero_copy_only=False).astype(np.int64))
            scores.append(model.predict(matrix(batch, model.spec)))
    name = f"_pred_{trait.key}"
    data = pa.table(
        {
            "profile_id": pa.array(np.concatenate(ids), pa.int64()),
            "score": pa.array(np.concatenate(scores), pa.float64()),
        }
    )
    scratch_table(conn, engine.schema, name, data)
    return name


def _write_table(
    conn: sa.Connection, engine: ComputeEngine, traits: list[PredictiveTrait], scratch: list[str]
) -> int:
    """Build `predictive_traits` from the scratch scores (percentiles by window function); changed profiles."""
    p = engine.tables.profiles
    source: Any = p
    columns: list[Any] = []
    for trait, name in zip(traits, scratch, strict=True):
        t = sa.table(name, sa.column("profile_id"), sa.column("score"), schema=engine.schema)
        ranked = sa.select(
            t.c.profile_id,
            t.c.score,
            sa.func.round(
                sa.cast(100 * sa.func.percent_rank().over(order_by=t.c.score), sa.Numeric), 2
            ).label("pct"),
        ).subquery(f"r_{trait.key}")
        source = source.outerjoin(ranked, ranked.c.profile_id == p.c.profile_id)
        columns += [
            sa.cast(ranked.c.score, sa.Double).label(trait.key),
            sa.cast(ranked.c.pct, sa.Double).label(f"{trait.key}_percentile"),
        ]
    new_name = f"{PREDICTIVE_TABLE}__new"
    query = sa.select(p.c.profile_id, *columns).select_from(source).order_by(p.c.profile_id)
    create_table_as(conn, engine.schema, new_name, query)
    keys = [k for trait in traits for k in trait.trait_keys]
    changed = note_changed_profiles(conn, engine, new_name, PREDICTIVE_TABLE, keys)
    rename_table(conn, engine.schema, new_name, PREDICTIVE_TABLE)
    return changed


def compute_predictive_traits(
    engine: ComputeEngine, workspace: Workspace, as_of: datetime, *, retrain: bool = False
) -> PredictiveSummary:
    """Train (when due or asked) and score every predictive trait as of `as_of`."""
    traits = list(workspace.traits.predictive)
    results: list[PredictiveResult] = []
    changed = 0
    with engine.begin() as conn:
        require_identity(conn, engine, as_of)
        if not traits:
            drop_table(conn, engine.schema, PREDICTIVE_TABLE)
            stage_done(conn, engine, PREDICTIVE_STAGE, as_of)
            return PredictiveSummary()
        ensure_event_columns(conn, engine.tables.events, workspace)
        scratch = []
        for trait in traits:
            found = store.latest(conn, engine, trait, as_of)
            due = retrain or found is None or as_of - found[1] >= trait.retrain
            fresh = _train(conn, engine, workspace, trait, as_of) if due else None
            model, trained_as_of = fresh, as_of
            if fresh is None and found is not None:  # not due, or nothing to learn from yet: the newest
                model, trained_as_of = found
            started = time.perf_counter()
            scratch.append(_score(conn, engine, workspace, trait, model, as_of))
            scored = int(
                conn.execute(
                    sa.select(sa.func.count()).select_from(sa.table(scratch[-1], schema=engine.schema))
                ).scalar()
                or 0
            )
            results.append(
                PredictiveResult(
                    trait.key,
                    fresh is not None,
                    trained_as_of,
                    scored,
                    model.figures if model else {"training_rows": 0},
                    round(time.perf_counter() - started, 3),
                )
            )
        changed = _write_table(conn, engine, traits, scratch)
        for name in scratch:
            drop_table(conn, engine.schema, name)
        stage_done(conn, engine, PREDICTIVE_STAGE, as_of)
    return PredictiveSummary(results, changed)
