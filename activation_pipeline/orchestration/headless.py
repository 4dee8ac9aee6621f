"""Run the pipeline without the UI, through the same Dagster definitions and jobs the UI uses."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.orchestration.report import evaluation_line, landing_line, sync_line
from activation_pipeline.orchestration.scope import AS_OF_TAG, SYNC_MODE_TAG, Scope
from activation_pipeline.orchestration.sync_assets import connection_keys, sync_job_name
from activation_pipeline.orchestration.sync_metadata import addressable_share, flat_figures
from activation_pipeline.orchestration.workspace import (
    LAND_JOB,
    MAIN_JOB,
    default_resources,
    workspace_definitions,
)

Figures = dict[str, float | int | str]


@dataclass
class RunSummary:
    """What a headless run did: its runs, and the figures of each materialisation (summed over partitions).

    Materialisations are named by their asset key without the workspace name (`audiences/vip_loyal`)."""

    run_ids: list[str] = field(default_factory=list)
    materialisations: dict[str, Figures] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Steps Dagster skipped because an upstream step produced nothing (e.g. a model with too little history)."""

    @property
    def success(self) -> bool:
        """Whether every run succeeded."""
        return not self.failures

    def add(self, result: dg.ExecuteInProcessResult, label: str) -> None:
        """Record a run's outcome and add up the numeric figures of its materialisations."""
        self.run_ids.append(result.run_id)
        if not result.success:
            self.failures.append(f"{label}: {failure_cause(result)}")
        self.skipped += [e.step_key or "" for e in result.all_events if e.event_type_value == "STEP_SKIPPED"]
        for event in result.get_asset_materialization_events():
            materialisation = event.step_materialization_data.materialization
            key = "/".join(materialisation.asset_key.path[1:])
            figures = self.materialisations.setdefault(key, {})
            for name, value in flat_figures(materialisation.metadata).items():
                previous = figures.get(name)
                if isinstance(value, int | float) and isinstance(previous, int | float):
                    figures[name] = previous + value
                else:
                    figures[name] = value
            rates_of_the_sum(figures)


def failure_cause(result: dg.ExecuteInProcessResult) -> str:
    """One line naming why a run failed: the innermost error of its first failed step (type and first line)."""
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            first = next((line.strip() for line in error.message.splitlines() if line.strip()), "")
            name = error.cls_name or "error"
            written, _, rest = first.partition(": ")
            if rest and written.endswith(name):  # "package.module.Error: text" -> "text"
                first = rest
            return f"{name}: {first}"[:300]
    return "see the run's log"


def rates_of_the_sum(figures: Figures) -> None:
    """Shares and rates summed over partitions mean nothing: compute them again from the summed counts."""
    if "addressable_share" in figures:
        figures["addressable_share"] = addressable_share(figures)
    requests, seconds = figures.get("requests"), figures.get("duration_seconds")
    if (
        "requests_per_second" in figures
        and isinstance(requests, int | float)
        and isinstance(seconds, int | float)
    ):
        figures["requests_per_second"] = round(requests / seconds, 2) if seconds else 0.0


@contextmanager
def pipeline_instance() -> Iterator[dg.DagsterInstance]:
    """The instance a headless run records into: $DAGSTER_HOME's if set, else an ephemeral one."""
    if os.environ.get("DAGSTER_HOME"):
        with dg.DagsterInstance.get() as instance:
            yield instance
    else:
        with dg.DagsterInstance.ephemeral() as instance:
            yield instance


def definitions_with(path: str, resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """One workspace's definitions with the default resources, or those given in their place."""
    return dg.Definitions.merge(
        workspace_definitions(path), dg.Definitions(resources={**default_resources(), **(resources or {})})
    )


def run_pipeline(
    workspace_path: str,
    as_of: datetime,
    instance: dg.DagsterInstance,
    log_level: str = "WARNING",
    sync: bool = True,
    resources: Mapping[str, object] | None = None,
    progress: Callable[[str], None] | None = None,
    tags: Mapping[str, str] | None = None,
) -> RunSummary:
    """Land what is new in the source, evaluate as of `as_of`, then sync every connection incrementally.

    `progress` is told what each stage is doing and, when it is done, its counts; `tags` go on every run."""
    say = progress or (lambda _line: None)
    defs = definitions_with(workspace_path, resources)
    workspace = load_workspace(workspace_path)
    scope = Scope(workspace.workspace)
    quiet = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    extra = dict(tags or {})
    summary = RunSummary()

    say("landing new events ...")
    started = time.monotonic()
    land = defs.resolve_job_def(scope.name(LAND_JOB))
    summary.add(
        land.execute_in_process(instance=instance, tags=extra, run_config=quiet, raise_on_error=False),
        LAND_JOB,
    )
    if not summary.success:
        return summary
    say(f"{landing_line(summary.materialisations.get('events', {}))} ({time.monotonic() - started:.1f} s)")

    say(f"evaluating profiles, traits and audiences as of {as_of.isoformat()} ...")
    started = time.monotonic()
    main = defs.resolve_job_def(scope.name(MAIN_JOB))
    summary.add(
        main.execute_in_process(
            instance=instance,
            tags={**extra, AS_OF_TAG: as_of.isoformat()},
            run_config=quiet,
            raise_on_error=False,
        ),
        MAIN_JOB,
    )
    if not summary.success:
        return summary
    say(f"{evaluation_line(summary.materialisations)} ({time.monotonic() - started:.1f} s)")
    if not sync:
        return summary
    for destination in workspace.destinations:
        keys = list(connection_keys(workspace, destination.id))
        if not keys:
            continue
        say(f"syncing {destination.id} ({len(keys)} connection{'s' if len(keys) > 1 else ''}) ...")
        started = time.monotonic()
        instance.add_dynamic_partitions(scope.partitions(destination.id).name or "", keys)
        job = defs.resolve_job_def(sync_job_name(scope, destination.id))
        for key in keys:
            result = job.execute_in_process(
                partition_key=key,
                instance=instance,
                tags={**extra, SYNC_MODE_TAG: "incremental"},
                run_config=quiet,
                raise_on_error=False,
            )
            summary.add(result, f"sync {key}")
        figures = summary.materialisations.get(f"sync/{destination.id}", {})
        say(f"{sync_line(destination.id, figures)} ({time.monotonic() - started:.1f} s)")
    return summary
