"""Predictive traits: models trained on the workspace's own events (likelihood of a goal, predicted value)."""

from activation_pipeline.compute.predictive.stage import (
    PredictiveResult,
    PredictiveSummary,
    compute_predictive_traits,
)

__all__ = ["PredictiveResult", "PredictiveSummary", "compute_predictive_traits"]
