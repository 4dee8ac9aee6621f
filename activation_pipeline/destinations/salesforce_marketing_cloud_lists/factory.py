"""The `salesforce_marketing_cloud_lists` destination type: audience membership rows in a data extension."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.salesforce_marketing_cloud.api import MAX_ROWS
from activation_pipeline.destinations.salesforce_marketing_cloud.factory import PLATFORM_LIMITS, fake
from activation_pipeline.destinations.salesforce_marketing_cloud.server import MarketingCloudSandbox
from activation_pipeline.destinations.salesforce_marketing_cloud_lists.client import MarketingCloudListClient
from activation_pipeline.destinations.salesforce_marketing_cloud_lists.settings import (
    MarketingCloudListConnection,
    MarketingCloudListDestination,
)
from activation_pipeline.destinations.spec import HOURLY, Capabilities, DestinationType, Finding, Loc

SUBSCRIBER_NAMES = ("user_id", "email")


def _check_connection(
    connection: Connection, destination: MarketingCloudListDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    if connection.setup != "customized" or not connection.id_sync:
        return
    if not any(name in SUBSCRIBER_NAMES for where, name in names if where[0] == "id_sync"):
        yield (
            ("id_sync",),
            "Marketing Cloud keys members by subscriber key: map an identifier as 'user_id' or 'email' in id_sync",
        )


DESTINATION = DestinationType(
    type_name="salesforce_marketing_cloud_lists",
    title="Salesforce Marketing Cloud Lists",
    kind="list",
    framework="list",
    trait_enrichment=True,
    id_sync=True,
    keys=None,
    model=MarketingCloudListDestination,
    connection_settings=MarketingCloudListConnection,
    defaults=Capabilities(
        max_batch=MAX_ROWS * 4,
        records_per_request=MAX_ROWS,
        rate_limit=20,
        max_concurrent=None,
        addressed_by=("user_id", "email"),
    ),
    default_schedule=HOURLY,
    client=MarketingCloudListClient,
    fake_server=MarketingCloudSandbox,
    fake=fake,
    check_connection=_check_connection,
    platform_limits=PLATFORM_LIMITS,
)
