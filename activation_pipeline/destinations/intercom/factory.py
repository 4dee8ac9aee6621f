"""The `intercom` destination type: contacts, audience tags or attributes, and data events."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.intercom.client import MAX_BATCH, IntercomClient
from activation_pipeline.destinations.intercom.server import IntercomSandbox
from activation_pipeline.destinations.intercom.settings import (
    IntercomConnection,
    IntercomDestination,
    IntercomSettings,
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


def _fake(settings: IntercomSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = IntercomSandbox(access_token=secret("access_token")).start()
    return server, server.url


def _check_connection(
    connection: Connection, destination: IntercomDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    setting = connection.settings.get("audience_as", "tag")
    if connection.source_kind == "audience" and setting == "tag" and not connection.send_identify:
        yield (
            ("send_identify",),
            "Intercom tags audience members from identify calls: turn on send_identify, or set "
            "settings.audience_as: attribute",
        )
    if connection.source_kind == "trait" and (
        "audience_as" in connection.settings or "tag_name" in connection.settings
    ):
        yield ("settings",), "audience_as and tag_name apply only to audiences"
    for where, name in names:
        if any(c in name for c in ".$"):
            yield (
                (*where, "as"),
                f"'{name}' cannot be an Intercom custom attribute: names may not contain '.' or '$'",
            )


DESTINATION = DestinationType(
    type_name="intercom",
    title="Intercom",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=IntercomDestination,
    connection_settings=IntercomConnection,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=1,
        rate_limit=8,
        max_concurrent=None,
        addressed_by=("user_id", "email"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=IntercomClient,
    fake_server=IntercomSandbox,
    fake=_fake,
    check_connection=_check_connection,
    platform_limits="10,000 calls a minute per app (in 10-second windows); event metadata at most 10 keys",
)
