"""The `braze` destination type: attributes and events through `/users/track`."""

from __future__ import annotations

from activation_pipeline.destinations.braze.client import MAX_OBJECTS, BrazeClient
from activation_pipeline.destinations.braze.server import BrazeSandbox
from activation_pipeline.destinations.braze.settings import BrazeDestination, BrazeSettings
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    NoConnectionSettings,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: BrazeSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = BrazeSandbox(api_key=secret("api_key")).start()
    return server, server.url


DESTINATION = DestinationType(
    type_name="braze",
    title="Braze",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=BrazeDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=MAX_OBJECTS,
        records_per_request=MAX_OBJECTS,
        rate_limit=100,
        max_concurrent=None,
        addressed_by=("user_id", "email", "phone"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=BrazeClient,
    fake_server=BrazeSandbox,
    fake=_fake,
)
