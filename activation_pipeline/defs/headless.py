"""Run the pipeline without the UI, through the same Dagster definitions the UI loads."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

from activation_pipeline.defs.build import build_definitions
from activation_pipeline.defs.jobs import MAIN_JOB
from activation_pipeline.defs.resources import AS_OF_TAG


@dataclass
class RunSummary:
    """What a headless run did: its run ids and the numeric metadata of each materialisation."""

    run_ids: list[str] = field(default_factory=list)
    materialisations: dict[str, dict[str, float | int | str]] = field(default_factory=dict)
    success: bool = True


@contextmanager
def pipeline_instance() -> Iterator[dg.DagsterInstance]:
    """The instance a headless run records into: $DAGSTER_HOME's if set, else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def _metadata_values(event: dg.AssetMaterialization) -> dict[str, float | int | str]:
    values: dict[str, float | int | str] = {}
    for name, entry in event.metadata.items():
        value = getattr(entry, "value", None)
        if isinstance(value, int | float | str):
            values[name] = value
    return values


def run_pipeline(
    workspace_path: str, as_of: datetime, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> RunSummary:
    """Materialise the workspace's assets as of a time and collect each asset's figures."""
    defs = build_definitions(workspace_path)
    summary = RunSummary()
    job = defs.resolve_job_def(MAIN_JOB)
    result = job.execute_in_process(
        instance=instance,
        tags={AS_OF_TAG: as_of.isoformat()},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
    )
    summary.run_ids.append(result.run_id)
    summary.success = summary.success and result.success
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        summary.materialisations[materialization.asset_key.to_user_string()] = _metadata_values(
            materialization
        )
    return summary
