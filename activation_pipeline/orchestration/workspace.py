"""The Dagster definitions of one workspace file, and the component serving it from a `defs.yaml`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.orchestration.compute_assets import build_compute_assets
from activation_pipeline.orchestration.config_assets import build_config_asset
from activation_pipeline.orchestration.journey_assets import JOURNEYS, build_journey_assets
from activation_pipeline.orchestration.plan import build_plan_job
from activation_pipeline.orchestration.resources import (
    SANDBOX_ENV,
    ComputeResource,
    DeliveryResource,
    StateStoreResource,
    read_sandbox_wiring,
)
from activation_pipeline.orchestration.resync import build_request_job, build_resync_sensor
from activation_pipeline.orchestration.scope import AUDIENCES, CONFIG, IDENTITY, TRAITS, Scope
from activation_pipeline.orchestration.sensors import build_partitions_sensor
from activation_pipeline.orchestration.serving_assets import build_serving_asset, serving_copy_key
from activation_pipeline.orchestration.sync_assets import build_sync_definitions

WORKSPACE_ENV = "ACTIVATION_WORKSPACE"
SAMPLE_WORKSPACE = Path(__file__).resolve().parents[2] / "data" / "sample" / "workspace.yml"
if TYPE_CHECKING:  # not exported by dagster 1.13; the type of define_asset_job()
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as AssetJob,
    )

MAIN_JOB = "activation_job"
LAND_JOB = "compute_land_events"
EVALUATE_JOB = "compute_evaluate"


def default_workspace_path() -> str:
    """The workspace file the CLI uses when none is given: $ACTIVATION_WORKSPACE, else the bundled sample."""
    return os.environ.get(WORKSPACE_ENV) or str(SAMPLE_WORKSPACE)


def default_resources() -> dict[str, object]:
    """The resources every workspace uses unless swapped: what each workspace file configures, or the sandbox's
    (fake servers, own state and results) when $ACTIVATION_SANDBOX names a wiring file."""
    resources: dict[str, object] = {
        "state": StateStoreResource(),
        "compute": ComputeResource(),
        "delivery": DeliveryResource(),
    }
    wiring = os.environ.get(SANDBOX_ENV)
    if wiring:
        resources.update(read_sandbox_wiring(wiring))
    return resources


def workspace_definitions(path: str | Path) -> dg.Definitions:
    """Assets, jobs, schedules and sensors of the workspace file at `path`, named under its workspace.

    An invalid file fails loading with every problem listed. Resources come from the code location."""
    path = str(Path(path).resolve())
    workspace = load_workspace(path)
    scope = Scope(workspace.workspace)
    compute_assets = build_compute_assets(scope, workspace, path)
    journey_assets = build_journey_assets(scope, workspace, path)
    evaluated = [
        key
        for asset in [*compute_assets, *journey_assets]
        for key in asset.keys
        if key not in (scope.key("events"), scope.key("profiles"))
        # A model asset is materialised only when retrained (skippable): depending on it would skip the export.
        and key.path[1:2] != ["models"]
    ]
    sync_assets, sync_jobs, schedules = build_sync_definitions(scope, workspace, path, evaluated)
    serving_copy = build_serving_asset(scope, path, evaluated)
    stages = dg.AssetSelection.groups(
        *(scope.group(s) for s in (CONFIG, IDENTITY, TRAITS, AUDIENCES, JOURNEYS))
    )
    jobs: list[dg.JobDefinition | AssetJob] = [
        dg.define_asset_job(
            scope.name(MAIN_JOB),
            selection=stages | dg.AssetSelection.assets(scope.key("sync_inputs"), serving_copy_key(scope)),
            description="Validate the workspace, then resolve profiles, compute traits and audiences as of the "
            "run's activation/as_of tag and export them for the destination syncs (events are landed by "
            f"{scope.name(LAND_JOB)}).",
        ),
        dg.define_asset_job(
            scope.name(LAND_JOB),
            selection=dg.AssetSelection.assets(scope.key("events")),
            description="Land every file (or warehouse row) of the events source not landed before.",
        ),
        dg.define_asset_job(
            scope.name(EVALUATE_JOB),
            selection=dg.AssetSelection.groups(
                *(scope.group(s) for s in (IDENTITY, TRAITS, AUDIENCES, JOURNEYS))
            )
            | dg.AssetSelection.assets(serving_copy_key(scope)),
            description="Resolve profiles, compute traits and evaluate audiences as of the run's "
            "activation/as_of tag.",
        ),
        build_request_job(scope, path),
        build_plan_job(scope, path),
        *sync_jobs,
    ]
    return dg.Definitions(
        assets=[
            build_config_asset(scope, path),
            *compute_assets,
            *journey_assets,
            *sync_assets,
            serving_copy,
        ],
        jobs=jobs,
        schedules=schedules,
        sensors=[build_partitions_sensor(scope, path), build_resync_sensor(scope, path, sync_jobs)],
    )


class WorkspaceComponent(dg.Component, dg.Model, dg.Resolvable):
    """A workspace served by the code location: one `defs.yaml` per workspace file."""

    path: str
    """The workspace file; a relative path is relative to the folder of the `defs.yaml`."""

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The workspace's definitions, keyed under its name."""
        return workspace_definitions(context.path / self.path)
