"""The `mailchimp` destination type: audience members upserted by subscriber hash, audiences as tags."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.checks import identify_only, require_email
from activation_pipeline.destinations.mailchimp.client import MAX_BATCH, MailchimpClient
from activation_pipeline.destinations.mailchimp.server import MailchimpSandbox
from activation_pipeline.destinations.mailchimp.settings import (
    MERGE_TAG,
    MailchimpConnection,
    MailchimpDestination,
    MailchimpSettings,
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


def _fake(settings: MailchimpSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = MailchimpSandbox(api_key=secret("api_key"), create_missing=True).start()
    return server, server.url


def _calls(
    limits: Capabilities, connection: Connection, destination: MailchimpDestination, counts: CallCounts
) -> int:
    """Batched: one /batches call, one poll (a batch finished at the first poll) and the results archive a
    batch. Call by call: an upsert a record, and for an audience a tag call each (a leaver only the tag)."""
    del limits
    if destination.settings.batch_operations:
        return 3 * counts.batches
    if connection.source_kind == "trait":
        return counts.records
    return 2 * counts.records - counts.removes


def _check_connection(
    connection: Connection, destination: MailchimpDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    yield from identify_only(connection, "Mailchimp")
    yield from require_email(connection, "Mailchimp finds members by the MD5 of their email")
    if connection.source_kind == "trait" and "merge_field" not in connection.settings:
        yield (
            ("settings",),
            "a computed trait goes to a Mailchimp merge field: set settings.merge_field (e.g. LTV)",
        )
    for where, name in names:
        if where[0] == "trait_enrichment" and not re.match(MERGE_TAG, name):
            yield (
                (*where, "as"),
                f"'{name}' is not a Mailchimp merge tag (upper case, at most 10: FNAME, LNAME)",
            )


DESTINATION = DestinationType(
    type_name="mailchimp",
    title="Mailchimp",
    kind="event",
    framework="classic",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=MailchimpDestination,
    connection_settings=MailchimpConnection,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=MAX_BATCH,
        rate_limit=10,
        max_concurrent=10,
        addressed_by=("email",),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=MailchimpClient,
    fake_server=MailchimpSandbox,
    fake=_fake,
    check_connection=_check_connection,
    calls=_calls,
    platform_limits="10 simultaneous connections; 500 pending batches; 120 s per call",
)
