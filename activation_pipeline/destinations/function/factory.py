"""The `function` destination type: the user's Python handlers called once per message."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from activation_pipeline.destinations.function.client import MAX_BATCH, FunctionClient
from activation_pipeline.destinations.function.settings import FunctionDestination
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    Finding,
    NoConnectionSettings,
)


def _check_destination(destination: FunctionDestination, resolve: Callable[[str], Path]) -> Iterator[Finding]:
    handler = destination.settings.handler
    if handler.endswith(".py") and not resolve(handler).is_file():
        yield (
            ("settings", "handler"),
            f"function file '{handler}' does not exist (relative to the workspace file)",
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
        max_concurrent=1,  # one worker process per function: its messages go one at a time
        addressed_by=("user_id", "anonymous_id"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=FunctionClient,
    check_destination=_check_destination,
)
