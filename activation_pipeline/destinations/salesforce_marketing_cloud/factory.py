"""The `salesforce_marketing_cloud` destination type: identify and track calls as data extension rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.salesforce_marketing_cloud.api import MAX_ROWS
from activation_pipeline.destinations.salesforce_marketing_cloud.client import MAX_BATCH, MarketingCloudClient
from activation_pipeline.destinations.salesforce_marketing_cloud.server import MarketingCloudSandbox
from activation_pipeline.destinations.salesforce_marketing_cloud.settings import (
    MarketingCloudAccess,
    MarketingCloudDestination,
)
from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    NoConnectionSettings,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer

PLATFORM_LIMITS = "token lifetime 20 minutes; 50 rows a rowset call (Salesforce's guideline)"


def fake(settings: MarketingCloudAccess, secret: SecretLookup) -> tuple[SandboxServer, str]:
    """The fake tenant for either SFMC type, taking the settings' credentials."""
    server = MarketingCloudSandbox(
        client_id=secret("client_id"), client_secret=secret("client_secret")
    ).start()
    return server, server.url


def _check_destination(
    destination: MarketingCloudDestination, _resolve: Callable[[str], Path]
) -> Iterator[Finding]:
    settings = destination.settings
    if settings.contact_data_extension_key is None and settings.event_data_extension_key is None:
        yield (
            ("settings",),
            "set contact_data_extension_key (identify calls) and/or event_data_extension_key (track calls)",
        )


def _check_connection(
    connection: Connection, destination: MarketingCloudDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del names
    settings = destination.settings
    if connection.send_identify and settings.contact_data_extension_key is None:
        yield (
            ("send_identify",),
            f"identify calls need destination '{destination.id}' to set contact_data_extension_key",
        )
    if connection.send_track and settings.event_data_extension_key is None:
        yield (
            ("send_track",),
            f"track calls need destination '{destination.id}' to set event_data_extension_key",
        )


DESTINATION = DestinationType(
    type_name="salesforce_marketing_cloud",
    title="Salesforce Marketing Cloud",
    kind="event",
    framework="actions",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=MarketingCloudDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=MAX_BATCH,
        records_per_request=MAX_ROWS,
        rate_limit=20,
        max_concurrent=None,
        addressed_by=("user_id", "email"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=MarketingCloudClient,
    fake_server=MarketingCloudSandbox,
    fake=fake,
    check_destination=_check_destination,
    check_connection=_check_connection,
    platform_limits=PLATFORM_LIMITS,
)
