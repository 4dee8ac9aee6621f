"""The dry-run plan as a Dagster job: each connection's plan recorded on its destination's sync asset."""

import dagster as dg

from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
from activation_pipeline.orchestration.runs import workspace_for_run
from activation_pipeline.orchestration.scope import Scope
from activation_pipeline.sync.delta import SyncMode
from activation_pipeline.sync.runner import plan_connection


class PlanConfig(dg.Config):
    """Which kind of sync to plan."""

    mode: str = "incremental"


def build_plan_job(scope: Scope, path: str) -> dg.JobDefinition:
    """The job recording what every connection's next sync would send, sending nothing."""

    @dg.op(
        name=scope.name("plan_syncs"),
        description="Count what each connection's next sync would send, sending nothing.",
    )
    def plan_syncs(
        context: dg.OpExecutionContext,
        config: PlanConfig,
        state: StateStoreResource,
        compute: ComputeResource,
    ) -> None:
        """Record each connection's plan (adds, removes, updates, records, API calls, time) as an observation."""
        ws = workspace_for_run(context, path, state)
        view = compute.results(ws)
        for connection in ws.delivery_connections():
            plan = plan_connection(state.open(ws), view, ws, connection, view.as_of, SyncMode(config.mode))
            context.log_event(
                dg.AssetObservation(
                    asset_key=scope.key("sync", connection.destination),
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
                        "plan/refreshes": plan.refreshes,
                        "plan/consent_left_out": plan.consent_left_out,
                        "plan/first_sync": plan.first_sync,
                    },
                )
            )

    @dg.job(
        name=scope.name("plan_job"),
        description="Dry run: what every connection's next sync would send (seen on each sync asset's page).",
    )
    def plan_job() -> None:
        """Plan every connection's next sync."""
        plan_syncs()

    return plan_job
