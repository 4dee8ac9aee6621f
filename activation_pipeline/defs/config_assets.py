"""The `workspace_config` asset: the validated configuration, summarised for the UI."""

import dagster as dg

from activation_pipeline.config.summary import summarise
from activation_pipeline.defs.resources import WorkspaceResource

CONFIG_GROUP = "config"


@dg.asset(
    group_name=CONFIG_GROUP,
    kinds={"yaml"},
    description="The workspace configuration, validated: counts of traits, audiences, destinations, connections.",
)
def workspace_config(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Validate the workspace file and record what it configures."""
    summary = summarise(workspace.workspace)
    context.log.info("workspace %s is valid", workspace.workspace.workspace)
    return dg.MaterializeResult(
        metadata={
            "workspace": dg.MetadataValue.text(workspace.workspace.workspace),
            "fingerprint": dg.MetadataValue.text(summary.fingerprint),
            **{name: dg.MetadataValue.int(count) for name, count in summary.counts.items()},
        }
    )
