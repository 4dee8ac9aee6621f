"""The `iterable` destination type: user updates and events, one by one or through the bulk endpoints."""

from __future__ import annotations

from dataclasses import replace

from activation_pipeline.destinations.iterable.client import BULK_LIMIT, SINGLE_BATCH, IterableClient
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.destinations.iterable.settings import IterableDestination, IterableSettings
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    NoConnectionSettings,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: IterableSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = IterableSandbox(api_key=secret("api_key")).start()
    return server, server.url


def _adjust(defaults: Capabilities, settings: IterableSettings) -> Capabilities:
    """Bulk endpoints take up to 1,000 users or events a request; the single ones take one."""
    if settings.bulk:
        return defaults
    return replace(defaults, max_batch=SINGLE_BATCH, records_per_request=1)


DESTINATION = DestinationType(
    type_name="iterable",
    title="Iterable",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=IterableDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=BULK_LIMIT,
        records_per_request=BULK_LIMIT,
        rate_limit=500,
        max_concurrent=None,
        addressed_by=("email", "user_id"),
        separate_records_by="email",
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=IterableClient,
    fake_server=IterableSandbox,
    fake=_fake,
    adjust=_adjust,
)
