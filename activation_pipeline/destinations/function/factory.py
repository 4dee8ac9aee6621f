"""The `function` destination type: the user's Python handlers called once per message."""

from __future__ import annotations

from activation_pipeline.destinations.function.client import MAX_BATCH, FunctionClient
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    NoConnectionSettings,
)

DESTINATION = DestinationType(
    type_name="function",
    title="Destination function (Python)",
    kind="event",
    framework="function",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=FunctionDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=1,
        rate_limit=50,
        max_concurrent=None,
        addressed_by=("user_id", "anonymous_id"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=FunctionClient,
)
