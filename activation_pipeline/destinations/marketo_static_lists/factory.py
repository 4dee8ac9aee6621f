"""The `marketo_static_lists` destination type: leads found by email and added to or removed from a list."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.marketo_static_lists.client import MAX_IDS, MarketoClient
from activation_pipeline.destinations.marketo_static_lists.server import MarketoSandbox
from activation_pipeline.destinations.marketo_static_lists.settings import (
    MarketoConnection,
    MarketoDestination,
    MarketoSettings,
)
from activation_pipeline.destinations.spec import (
    HOURLY,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: MarketoSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = MarketoSandbox(
        client_id=secret("client_id"), client_secret=secret("client_secret"), create_missing=True
    ).start()
    return server, server.url


def _check_connection(
    connection: Connection, destination: MarketoDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del names
    if connection.setup != "customized" or not connection.id_sync:
        return
    lookup = destination.settings.lookup_field
    if not any(s.as_ == lookup for s in connection.id_sync):
        yield ("id_sync",), f"Marketo finds leads by '{lookup}': map an identifier as '{lookup}' in id_sync"


DESTINATION = DestinationType(
    type_name="marketo_static_lists",
    title="Marketo Static Lists",
    kind="list",
    framework="list",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=MarketoDestination,
    connection_settings=MarketoConnection,
    defaults=Capabilities(
        max_batch=MAX_IDS,
        records_per_request=MAX_IDS,
        rate_limit=5,
        max_concurrent=10,
        addressed_by=("email",),
    ),
    default_schedule=HOURLY,
    client=MarketoClient,
    fake_server=MarketoSandbox,
    fake=_fake,
    check_connection=_check_connection,
    platform_limits="100 calls per 20 s, 10 concurrent, 50,000 calls a day",
)
