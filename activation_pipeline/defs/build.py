"""Assemble the Dagster `Definitions` for one workspace file."""

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.defs.compute_assets import compute_definitions
from activation_pipeline.defs.config_assets import workspace_config
from activation_pipeline.defs.jobs import activation_job
from activation_pipeline.defs.plan import plan_job
from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.defs.resync import build_resync_sensor, request_resync
from activation_pipeline.defs.sensors import connection_partitions_sensor
from activation_pipeline.defs.sync_assets import build_sync_definitions


def build_definitions(workspace_path: str) -> dg.Definitions:
    """Definitions for a workspace; an invalid file fails loading with every problem listed."""
    workspace = load_workspace(workspace_path)
    sync_assets, sync_jobs, sync_schedules = build_sync_definitions(workspace)
    own = dg.Definitions(
        assets=[workspace_config, *sync_assets],
        jobs=[activation_job, request_resync, plan_job, *sync_jobs],
        schedules=sync_schedules,
        sensors=[connection_partitions_sensor, build_resync_sensor(sync_jobs)],
        resources={"workspace": WorkspaceResource(path=workspace_path)},
    )
    return dg.Definitions.merge(own, compute_definitions())
