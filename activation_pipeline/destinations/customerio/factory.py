"""The `customerio` destination type: people's attributes and events through the Track API v2 batch call."""

from __future__ import annotations

from activation_pipeline.destinations.customerio.client import MAX_BATCH, CustomerioClient
from activation_pipeline.destinations.customerio.server import CustomerioSandbox
from activation_pipeline.destinations.customerio.settings import CustomerioDestination, CustomerioSettings
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    NoConnectionSettings,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: CustomerioSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = CustomerioSandbox(site_id=settings.site_id, api_key=secret("api_key")).start()
    return server, server.url


DESTINATION = DestinationType(
    type_name="customerio",
    title="Customer.io",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=CustomerioDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=MAX_BATCH,
        rate_limit=30,
        max_concurrent=None,
        addressed_by=("user_id", "email"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=CustomerioClient,
    fake_server=CustomerioSandbox,
    fake=_fake,
    platform_limits="500 KB a request, 32 KB an action; fair use 100 requests a second",
)
