"""Training, held-out evaluation and scoring of one predictive trait's model (scikit-learn, fixed seeds)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score
from threadpoolctl import threadpool_limits

from activation_pipeline.compute.predictive.features import MAX_CATEGORIES, FeatureSpec

SEED = 20_261_101
TEST_SHARE = 5
"""One profile in this many (chosen by a hash of its id, so the same profiles every time) is held out."""
IMPORTANCE_ROWS = 2_000
TOP_IMPORTANCES = 10
MIN_EARLY_STOPPING_ROWS = 2_000


@dataclass(frozen=True)
class TrainedModel:
    """A fitted estimator, the features it reads and its held-out figures."""

    kind: str
    spec: FeatureSpec
    estimator: Any
    figures: dict[str, Any]

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The probability (likelihood) or the predicted sum (value) per row."""
        if len(features) == 0:
            return np.zeros(0)
        with threadpool_limits(1):
            if self.kind == "likelihood":
                if len(self.estimator.classes_) == 1:  # only one outcome was seen in training
                    return np.full(len(features), float(self.estimator.classes_[0]))
                return np.asarray(self.estimator.predict_proba(features)[:, 1], dtype=np.float64)
            return np.maximum(np.asarray(self.estimator.predict(features), dtype=np.float64), 0.0)


def matrix(data: pa.Table | pa.RecordBatch, spec: FeatureSpec) -> np.ndarray:
    """The feature columns of Arrow data as a float32 matrix (missing values as NaN); a categorical column
    becomes its value's position in the spec's vocabulary, or one past it for any other value."""
    names = spec.names()
    if data.num_rows == 0:
        return np.zeros((0, len(names)), dtype=np.float32)
    numeric = names[: len(names) - len(spec.categorical)]
    columns = [data.column(n).to_numpy(zero_copy_only=False).astype(np.float32) for n in numeric]
    for key, vocabulary in zip(spec.categorical, spec.vocabulary, strict=True):
        columns.append(_codes(data.column(f"category_{key}"), vocabulary))
    return np.column_stack(columns)


def _text(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text values with empty ones as missing (PostgreSQL's CSV export writes NULL text as empty)."""
    text = pc.cast(column, pa.string())
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _codes(column: pa.Array | pa.ChunkedArray, vocabulary: tuple[str, ...]) -> np.ndarray:
    text = _text(column)
    found = pc.index_in(text, value_set=pa.array(vocabulary, pa.string()))
    other = pc.if_else(pc.is_null(text), pa.scalar(None, pa.int32()), len(vocabulary))
    codes = pc.coalesce(found, other)
    return np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.float32)


def vocabulary(column: pa.Array | pa.ChunkedArray) -> tuple[str, ...]:
    """The most frequent values of a categorical feature (at most MAX_CATEGORIES; ties by value)."""
    counts = pc.value_counts(pc.drop_null(_text(column))).to_pylist()
    ranked = sorted(counts, key=lambda c: (-c["counts"], c["values"]))
    return tuple(c["values"] for c in ranked[:MAX_CATEGORIES])


def held_out(profile_ids: np.ndarray) -> np.ndarray:
    """True for the profiles held out for evaluation: a fixed hash of the id, not the row order."""
    mixed = profile_ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed >> np.uint64(40)) % np.uint64(TEST_SHARE) == 0


def _estimator(kind: str, labels: np.ndarray, spec: FeatureSpec) -> Any:
    # Small, regularised trees with early stopping on a fixed validation split: goals are often rare.
    options = {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 50,
        "l2_regularization": 1.0,
        "early_stopping": _can_stop_early(kind, labels),
        "validation_fraction": 0.15,
        "n_iter_no_change": 15,
        "random_state": SEED,
        # Categories split as sets of values (the model's native handling), not as an arbitrary order.
        "categorical_features": [n.startswith("category_") for n in spec.names()]
        if spec.categorical
        else None,
    }
    if kind == "likelihood":
        return HistGradientBoostingClassifier(**options)
    return HistGradientBoostingRegressor(**options)


def _can_stop_early(kind: str, labels: np.ndarray) -> bool:
    """Early stopping holds out a validation share: only worth it with enough rows (and of each outcome)."""
    if len(labels) < MIN_EARLY_STOPPING_ROWS:
        return False
    return kind != "likelihood" or min(int(labels.sum()), int(len(labels) - labels.sum())) >= 20


def _calibration(predicted: np.ndarray, observed: np.ndarray) -> list[dict[str, float]]:
    """Mean predicted and observed per decile of the prediction (decile 10 = highest predictions)."""
    if len(predicted) < 10:
        return []
    order = np.argsort(predicted, kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, 10), start=1):
        rows.append(
            {
                "decile": decile,
                "rows": len(part),
                "predicted": round(float(predicted[part].mean()), 4),
                "observed": round(float(observed[part].mean()), 4),
            }
        )
    return rows


def train(kind: str, spec: FeatureSpec, data: pa.Table) -> TrainedModel:
    """Fit on the training profiles and evaluate on the held-out ones; `data` holds profile_id, features, label."""
    started = time.perf_counter()
    test = held_out(data.column("profile_id").to_numpy(zero_copy_only=False))
    # The vocabulary is learnt from the training rows only, like everything else the model knows.
    training = data.filter(pa.array(~test))
    spec = replace(
        spec, vocabulary=tuple(vocabulary(training.column(f"category_{k}")) for k in spec.categorical)
    )
    names = spec.names()
    features = matrix(data, spec)
    labels = data.column("label").to_numpy(zero_copy_only=False).astype(np.float64)
    estimator = _estimator(kind, labels[~test], spec)
    x_train, y_train, x_test, y_test = features[~test], labels[~test], features[test], labels[test]
    if len(x_train) == 0:
        raise ValueError("no profiles to train on: the events do not reach back to as_of - horizon")
    with threadpool_limits(1):  # OpenMP threads spin against each other on a shared 2-core machine
        estimator.fit(x_train, y_train)
    model = TrainedModel(kind, spec, estimator, {})
    predicted = model.predict(x_test)
    figures: dict[str, Any] = {
        "training_rows": len(x_train),
        "test_rows": len(x_test),
        "features": len(names),
    }
    if kind == "likelihood":
        figures["base_rate"] = round(float(labels.mean()), 4)
        both = len(np.unique(y_test)) == 2
        figures["auc"] = round(float(roc_auc_score(y_test, predicted)), 4) if both else None
    else:
        figures["mean_value"] = round(float(labels.mean()), 4)
        figures["r2"] = round(float(r2_score(y_test, predicted)), 4) if len(y_test) > 1 else None
        figures["mae"] = round(float(mean_absolute_error(y_test, predicted)), 4) if len(y_test) else None
    figures["calibration"] = _calibration(predicted, y_test)
    figures["importances"] = _importances(model, x_test, y_test)
    figures["training_seconds"] = round(time.perf_counter() - started, 3)
    return TrainedModel(kind, spec, estimator, figures)


def _importances(model: TrainedModel, x_test: np.ndarray, y_test: np.ndarray) -> list[dict[str, Any]]:
    """Permutation importance on (at most IMPORTANCE_ROWS of) the held-out rows: the score lost per feature,
    most important first."""
    if len(x_test) < 10 or (model.kind == "likelihood" and len(np.unique(y_test)) < 2):
        return []
    x, y = x_test[:IMPORTANCE_ROWS], y_test[:IMPORTANCE_ROWS]
    scoring = "roc_auc" if model.kind == "likelihood" else "r2"
    with threadpool_limits(1):
        found = permutation_importance(model.estimator, x, y, scoring=scoring, n_repeats=2, random_state=SEED)
    names = model.spec.names()
    ranked = sorted(zip(names, found.importances_mean, strict=True), key=lambda p: (-p[1], p[0]))
    return [
        {"feature": model.spec.describe(n), "importance": round(float(v), 4)}
        for n, v in ranked[:TOP_IMPORTANCES]
    ]
