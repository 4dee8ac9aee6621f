"""The main job: validate the workspace, evaluate profiles, traits and audiences, export them for syncs."""

import dagster as dg

MAIN_JOB = "activation_job"

activation_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.groups("config", "identity", "traits", "audiences")
    | dg.AssetSelection.assets("sync_inputs"),
    description="Validate the workspace, then resolve profiles, compute traits and audiences as of the run's "
    "activation/as_of tag and export them for the destination syncs (events are landed by compute_land_events).",
)
