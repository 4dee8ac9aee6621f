"""Run the pipeline without the UI, through the same Dagster definitions and jobs the UI uses."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.defs.build import build_definitions
from activation_pipeline.defs.jobs import MAIN_JOB
from activation_pipeline.defs.resources import AS_OF_TAG
from activation_pipeline.defs.sync_assets import (
    SYNC_MODE_TAG,
    connection_keys,
    destination_partitions,
    sync_job_name,
)

LAND_JOB = "compute_land_events"
Figures = dict[str, float | int | str]


@dataclass
class RunSummary:
    """What a headless run did: its runs, and the figures of each materialisation (summed over partitions)."""

    run_ids: list[str] = field(default_factory=list)
    materialisations: dict[str, Figures] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Whether every run succeeded."""
        return not self.failures

    def add(self, result: dg.ExecuteInProcessResult, label: str) -> None:
        """Record a run's outcome and add up the numeric figures of its materialisations."""
        self.run_ids.append(result.run_id)
        if not result.success:
            self.failures.append(label)
        for event in result.get_asset_materialization_events():
            materialisation = event.step_materialization_data.materialization
            key = materialisation.asset_key.to_user_string()
            figures = self.materialisations.setdefault(key, {})
            for name, entry in materialisation.metadata.items():
                value: Any = getattr(entry, "value", None)
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    continue
                previous = figures.get(name)
                if isinstance(value, int | float) and isinstance(previous, int | float):
                    figures[name] = previous + value
                else:
                    figures[name] = value


@contextmanager
def pipeline_instance() -> Iterator[dg.DagsterInstance]:
    """The instance a headless run records into: $DAGSTER_HOME's if set, else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def run_pipeline(
    workspace_path: str,
    as_of: datetime,
    instance: dg.DagsterInstance,
    log_level: str = "WARNING",
    sync: bool = True,
) -> RunSummary:
    """Land what is new in the source, evaluate as of `as_of`, then sync every connection incrementally."""
    defs = build_definitions(workspace_path)
    workspace = load_workspace(workspace_path)
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    summary = RunSummary()

    land = defs.resolve_job_def(LAND_JOB)
    summary.add(land.execute_in_process(instance=instance, run_config=quiet, raise_on_error=False), LAND_JOB)
    if not summary.success:
        return summary

    main = defs.resolve_job_def(MAIN_JOB)
    summary.add(
        main.execute_in_process(
            instance=instance, tags={AS_OF_TAG: as_of.isoformat()}, run_config=quiet, raise_on_error=False
        ),
        MAIN_JOB,
    )
    if not sync or not summary.success:
        return summary
    for destination in workspace.destinations:
        keys = list(connection_keys(workspace, destination.id))
        if not keys:
            continue
        instance.add_dynamic_partitions(
            destination_partitions(workspace.workspace, destination.id).name or "", keys
        )
        job = defs.resolve_job_def(sync_job_name(destination.id))
        for key in keys:
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                tags={SYNC_MODE_TAG: "incremental"},
                run_config=quiet,
                raise_on_error=False,
            )
            summary.add(result, f"sync {key}")
    return summary
