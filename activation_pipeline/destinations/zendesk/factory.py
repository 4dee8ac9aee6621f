"""The `zendesk` destination type: users created or updated with the required `name`, audiences as tags or
user fields."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.checks import identify_only, maps_as
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    CallCounts,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    SecretLookup,
)
from activation_pipeline.destinations.zendesk.client import MAX_USERS, ZendeskClient
from activation_pipeline.destinations.zendesk.server import ZendeskSandbox
from activation_pipeline.destinations.zendesk.settings import (
    ZendeskConnection,
    ZendeskDestination,
    ZendeskSettings,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: ZendeskSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = ZendeskSandbox(email=settings.email, api_token=secret("api_token"), create_missing=True).start()
    return server, server.url


def _calls(
    limits: Capabilities, connection: Connection, destination: ZendeskDestination, counts: CallCounts
) -> int:
    """A bulk job and one status poll a batch (a job done at the first poll), and a tag call a user when an
    audience is kept as a tag."""
    del limits, destination
    tags = (
        connection.source_kind != "trait"
        and ZendeskConnection.model_validate(connection.settings).audience_as == "tag"
    )
    return 2 * counts.batches + (counts.records if tags else 0)


def _check_connection(
    connection: Connection, destination: ZendeskDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del names
    yield from identify_only(connection, "Zendesk")
    fallback = destination.settings.name_fallback
    if fallback == "none" and not (connection.setup == "customized" and maps_as(connection, "name")):
        yield (
            ("trait_enrichment",),
            "Zendesk requires a name: map a trait as 'name' (setup: customized), or set the destination's "
            "name_fallback to email or user_id",
        )
    if (
        connection.setup == "customized"
        and connection.id_sync
        and not maps_as(connection, "email")
        and fallback == "email"
        and not maps_as(connection, "name")
    ):
        yield (
            ("id_sync",),
            "Zendesk's name falls back to the email: map an identifier as 'email' or a trait as 'name'",
        )


DESTINATION = DestinationType(
    type_name="zendesk",
    title="Zendesk",
    kind="event",
    framework="classic",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=ZendeskDestination,
    connection_settings=ZendeskConnection,
    defaults=Capabilities(
        max_batch=MAX_USERS,
        records_per_request=MAX_USERS,
        rate_limit=50,
        max_concurrent=None,
        addressed_by=("user_id", "email"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=ZendeskClient,
    fake_server=ZendeskSandbox,
    fake=_fake,
    check_connection=_check_connection,
    calls=_calls,
    platform_limits="100 users a bulk job; 200-700 requests a minute by plan; 30 queued jobs",
)
