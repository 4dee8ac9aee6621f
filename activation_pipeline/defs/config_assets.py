"""The `workspace_config` asset: the validated configuration, summarised for the UI."""

import dagster as dg

from activation_pipeline.config.summary import summarise
from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.state.settings_history import record_settings
from activation_pipeline.state.store import open_state

CONFIG_GROUP = "config"


@dg.asset(
    group_name=CONFIG_GROUP,
    kinds={"yaml"},
    description="The workspace configuration, validated; records every change of connection settings.",
)
def workspace_config(context: dg.AssetExecutionContext, workspace: WorkspaceResource) -> dg.MaterializeResult:
    """Validate the workspace file, record what it configures and any change of connection settings."""
    ws = workspace.workspace
    summary = summarise(ws)
    store = open_state(ws.state_location())
    try:
        changes = record_settings(store, ws)
    finally:
        store.dispose()
    for change in changes:
        context.log.info("settings of %s changed: %d value(s)", change.connection_id, len(change.diff))
    return dg.MaterializeResult(
        metadata={
            "workspace": dg.MetadataValue.text(ws.workspace),
            "settings_changes": dg.MetadataValue.int(len(changes)),
            "fingerprint": dg.MetadataValue.text(summary.fingerprint),
            **{name: dg.MetadataValue.int(count) for name, count in summary.counts.items()},
        }
    )
