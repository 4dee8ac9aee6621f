"""The `workspace_config` asset of a workspace: the validated configuration, upstream of every asset reading it."""

import dagster as dg

from activation_pipeline.config.summary import summarise
from activation_pipeline.orchestration.resources import StateStoreResource
from activation_pipeline.orchestration.runs import workspace_for_run
from activation_pipeline.orchestration.scope import CONFIG, Scope
from activation_pipeline.state.settings_history import record_settings


def build_config_asset(scope: Scope, path: str) -> dg.AssetsDefinition:
    """The configuration asset of the workspace file at `path`."""

    @dg.asset(
        key=scope.key("workspace_config"),
        group_name=scope.group(CONFIG),
        kinds={"yaml"},
        description="The workspace configuration, validated; records every change of connection settings.",
    )
    def workspace_config(
        context: dg.AssetExecutionContext, state: StateStoreResource
    ) -> dg.MaterializeResult:
        """Validate the workspace file, record what it configures and any change of connection settings."""
        ws = workspace_for_run(context, path, state)
        summary = summarise(ws)
        changes = record_settings(state.open(ws), ws)
        for change in changes:
            if change.settings is None:
                context.log.info("connection %s removed: its settings history is kept", change.connection_id)
            elif all(d.before is None for d in change.diff):
                context.log.info("settings of %s recorded for the first time", change.connection_id)
            else:
                changed = ", ".join(d.path for d in change.diff)
                context.log.info("settings of %s changed: %s", change.connection_id, changed)
        return dg.MaterializeResult(
            metadata={
                "workspace": dg.MetadataValue.text(ws.workspace),
                "file": dg.MetadataValue.path(path),
                "settings_changes": dg.MetadataValue.int(len(changes)),
                "fingerprint": dg.MetadataValue.text(summary.fingerprint),
                **{name: dg.MetadataValue.int(count) for name, count in summary.counts.items()},
            }
        )

    return workspace_config
