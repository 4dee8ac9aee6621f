"""Jobs over the asset graph."""

import dagster as dg

MAIN_JOB = "activation_job"

activation_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Validate the workspace and compute everything downstream of it (not partitioned assets).",
)
