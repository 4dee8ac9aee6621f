"""The Dagster code location: the workspace named by $ACTIVATION_WORKSPACE (default: the sample)."""

from activation_pipeline.defs.build import build_definitions
from activation_pipeline.defs.resources import default_workspace_path

defs = build_definitions(default_workspace_path())
