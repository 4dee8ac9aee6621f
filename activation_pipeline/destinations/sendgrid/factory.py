"""The `sendgrid` destination type: Marketing Contacts upserted into one list per audience, removed from it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.checks import identify_only, require_email
from activation_pipeline.destinations.sendgrid.client import (
    CUSTOM_FIELD_ID,
    MAX_BATCH,
    RESERVED_FIELDS,
    SendGridClient,
)
from activation_pipeline.destinations.sendgrid.server import SendGridSandbox
from activation_pipeline.destinations.sendgrid.settings import (
    SendGridConnection,
    SendGridDestination,
    SendGridSettings,
)
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: SendGridSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = SendGridSandbox(api_key=secret("api_key"), create_missing=True).start()
    return server, server.url


def _check_connection(
    connection: Connection, destination: SendGridDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    if connection.source_kind == "trait":
        yield ("source",), "SendGrid lists hold audiences (one list each); connect an audience"
    yield from identify_only(connection, "SendGrid")
    yield from require_email(connection, "SendGrid keys contacts by email")
    for where, name in names:
        if where[0] == "trait_enrichment" and name not in RESERVED_FIELDS and not CUSTOM_FIELD_ID.match(name):
            yield (
                (*where, "as"),
                f"'{name}' is neither a SendGrid reserved field ({', '.join(sorted(RESERVED_FIELDS))}) nor a "
                "custom field id such as e1_T",
            )


DESTINATION = DestinationType(
    type_name="sendgrid",
    title="SendGrid Marketing Contacts",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=SendGridDestination,
    connection_settings=SendGridConnection,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=MAX_BATCH,
        rate_limit=100,
        max_concurrent=None,
        addressed_by=("email",),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=SendGridClient,
    fake_server=SendGridSandbox,
    fake=_fake,
    check_connection=_check_connection,
    platform_limits="30,000 contacts or 6 MB an upsert (asynchronous jobs); 100 emails a search",
)
