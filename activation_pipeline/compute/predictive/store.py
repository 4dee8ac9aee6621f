"""The trained models of a workspace's predictive traits, kept in the compute schema with their figures.

Every training adds a row (nothing is overwritten), so the figures of past models stay readable. Models are
pickled scikit-learn estimators: the compute schema must be as trusted as the code that reads it.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.predictive.features import FeatureSpec
from activation_pipeline.compute.predictive.model import TrainedModel
from activation_pipeline.compute.state import fingerprint
from activation_pipeline.config.models import PredictiveTrait


def models_table(schema: str) -> sa.Table:
    """The `predictive_models` table of a compute schema."""
    return sa.Table(
        "predictive_models",
        sa.MetaData(schema=schema),
        sa.Column("trait_key", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("trained_as_of", sa.DateTime, nullable=False),
        sa.Column("cutoff", sa.DateTime, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("figures", sa.Text, nullable=False),
        sa.Column("model", sa.LargeBinary, nullable=False),
    )


def config_digest(trait: PredictiveTrait) -> str:
    """A digest of everything that shapes the model (a change retrains it)."""
    return fingerprint(trait.model_copy(update={"description": ""}))


def _spec_text(spec: FeatureSpec) -> str:
    data = asdict(spec)
    data["windows"] = [int(w.total_seconds()) for w in spec.windows]
    return json.dumps(data, sort_keys=True)


def _spec(text: str) -> FeatureSpec:
    data = json.loads(text)
    return FeatureSpec(
        events=tuple(data["events"]),
        windows=tuple(timedelta(seconds=s) for s in data["windows"]),
        monetary=data["monetary"],
        traits=tuple(data["traits"]),
        categorical=tuple(data.get("categorical", ())),
        vocabulary=tuple(tuple(v) for v in data.get("vocabulary", ())),
    )


def save(
    conn: sa.Connection,
    engine: ComputeEngine,
    trait: PredictiveTrait,
    model: TrainedModel,
    trained_as_of: datetime,
    cutoff: datetime,
) -> None:
    """Record a newly trained model and its figures."""
    table = models_table(engine.schema)
    table.create(conn, checkfirst=True)
    digest = config_digest(trait)
    # Training is deterministic: a retraining at the same time replaces the model trained then.
    conn.execute(
        sa.delete(table).where(
            table.c.trait_key == trait.key, table.c.config == digest, table.c.trained_as_of == trained_as_of
        )
    )
    conn.execute(
        sa.insert(table).values(
            trait_key=trait.key,
            config=digest,
            trained_as_of=trained_as_of,
            cutoff=cutoff,
            spec=_spec_text(model.spec),
            figures=json.dumps(model.figures, sort_keys=True),
            model=pickle.dumps(model.estimator, protocol=pickle.HIGHEST_PROTOCOL),
        )
    )


def latest(
    conn: sa.Connection, engine: ComputeEngine, trait: PredictiveTrait, as_of: datetime
) -> tuple[TrainedModel, datetime] | None:
    """The newest model of this configuration trained at or before `as_of`, with its training time."""
    table = models_table(engine.schema)
    table.create(conn, checkfirst=True)
    row = conn.execute(
        sa.select(table.c.trained_as_of, table.c.spec, table.c.figures, table.c.model)
        .where(
            table.c.trait_key == trait.key,
            table.c.config == config_digest(trait),
            table.c.trained_as_of <= as_of,
        )
        .order_by(table.c.trained_as_of.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    estimator: Any = pickle.loads(row.model)  # noqa: S301 (written by `save` into the workspace's own schema)
    return TrainedModel(trait.kind, _spec(row.spec), estimator, json.loads(row.figures)), row.trained_as_of
