"""The `hubspot` destination type: contacts upserted by email, audiences as list memberships."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.checks import identify_only, require_email
from activation_pipeline.destinations.hubspot.client import MAX_INPUTS, HubSpotClient
from activation_pipeline.destinations.hubspot.server import HubSpotSandbox
from activation_pipeline.destinations.hubspot.settings import (
    HubSpotConnection,
    HubSpotDestination,
    HubSpotSettings,
)
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    CallCounts,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer

PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _fake(settings: HubSpotSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = HubSpotSandbox(access_token=secret("access_token"), create_missing=True).start()
    return server, server.url


def _calls(
    limits: Capabilities, connection: Connection, destination: HubSpotDestination, counts: CallCounts
) -> int:
    """One upsert a batch, and for an audience (or journey step) its list call."""
    del limits, destination
    return counts.batches * (1 if connection.source_kind == "trait" else 2)


def _check_connection(
    connection: Connection, destination: HubSpotDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    yield from identify_only(connection, "HubSpot")
    yield from require_email(connection, "HubSpot upserts contacts by email")
    if connection.source_kind != "trait" and "list_id" not in connection.settings:
        yield ("settings",), "HubSpot keeps an audience in a MANUAL list: set settings.list_id"
    if connection.source_kind == "trait" and not PROPERTY_NAME.match(connection.source_key):
        yield ("source",), f"'{connection.source_key}' is not a HubSpot property name (lower case, _)"
    for where, name in names:
        if where[0] == "trait_enrichment" and not PROPERTY_NAME.match(name):
            yield (*where, "as"), f"'{name}' is not a HubSpot property name (lower-case letters, digits, _)"


DESTINATION = DestinationType(
    type_name="hubspot",
    title="HubSpot",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=HubSpotDestination,
    connection_settings=HubSpotConnection,
    defaults=Capabilities(
        max_batch=MAX_INPUTS,
        records_per_request=MAX_INPUTS,
        rate_limit=5,  # objects (contacts) per second, the seed's unit: two calls each at most
        max_concurrent=None,
        addressed_by=("email",),
        rate_counts_records=True,
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=HubSpotClient,
    fake_server=HubSpotSandbox,
    fake=_fake,
    check_connection=_check_connection,
    calls=_calls,
    platform_limits="100 inputs a batch; 100-190 calls per 10 s per app; 5 contacts per second (seed)",
)
