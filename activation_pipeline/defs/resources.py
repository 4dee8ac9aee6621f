"""The resources every workspace of the code location uses: what each workspace file configures."""

import dagster as dg

from activation_pipeline.orchestration.workspace import default_resources


@dg.definitions
def resources() -> dg.Definitions:
    """The state store, compute engine and delivery resources."""
    return dg.Definitions(resources=default_resources())
