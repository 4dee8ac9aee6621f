"""The dry-run plan as a Dagster job: each connection's plan recorded on its destination's sync asset."""

import dagster as dg

from activation_pipeline.defs.resources import WorkspaceResource
from activation_pipeline.defs.sync_assets import sql_levels, state_dir
from activation_pipeline.state.store import open_state
from activation_pipeline.sync.compute_view import ResultsView, results_directory
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.runner import plan_connection


class PlanConfig(dg.Config):
    """Which kind of sync to plan."""

    mode: str = "incremental"


@dg.op(description="Count what each connection's next sync would send, sending nothing.")
def plan_syncs(context: dg.OpExecutionContext, config: PlanConfig, workspace: WorkspaceResource) -> None:
    """Record each connection's plan (adds, removes, updates, records, API calls, time) as an observation."""
    ws = workspace.workspace
    view = ResultsView(results_directory(state_dir(ws)), sql_levels(ws))
    store = open_state(ws.state_location())
    try:
        for connection in ws.connections:
            plan = plan_connection(store, view, ws, connection, view.as_of, SyncMode(config.mode))
            context.log_event(
                dg.AssetObservation(
                    asset_key=dg.AssetKey(["sync", connection.destination]),
                    metadata={
                        "connection": connection.connection_id,
                        "mode": plan.mode.value,
                        "plan/adds": plan.adds,
                        "plan/removes": plan.removes,
                        "plan/updates": plan.updates,
                        "plan/records": plan.records,
                        "plan/api_calls": plan.api_calls,
                        "plan/seconds": plan.seconds if plan.seconds is not None else -1.0,
                        "plan/unaddressable": plan.unaddressable,
                        "plan/first_sync": plan.first_sync,
                    },
                )
            )
    finally:
        store.dispose()


@dg.job(description="Dry run: what every connection's next sync would send (seen on each sync asset's page).")
def plan_job() -> None:
    """Plan every connection's next sync."""
    plan_syncs()
