"""Compute layer: landing, identity resolution, traits and audiences as SQL on DuckDB or PostgreSQL.

The facade is `ComputePipeline` (see `pipeline.py`); no module here imports Dagster.
"""

from activation_pipeline.compute.engine import ComputeEngine
from activation_pipeline.compute.pipeline import ComputePipeline, EvaluationSummary

__all__ = ["ComputeEngine", "ComputePipeline", "EvaluationSummary"]
