"""Assemble the Dagster `Definitions` for one workspace file."""

import dagster as dg

from activation_pipeline.config import load_workspace
from activation_pipeline.defs.config_assets import workspace_config
from activation_pipeline.defs.jobs import activation_job
from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.defs.sensors import connection_partitions_sensor


def build_definitions(workspace_path: str) -> dg.Definitions:
    """Definitions for a workspace; an invalid file fails loading with every problem listed."""
    load_workspace(workspace_path)
    return dg.Definitions(
        assets=[workspace_config],
        jobs=[activation_job],
        sensors=[connection_partitions_sensor],
        resources={"workspace": WorkspaceResource(path=workspace_path)},
    )
