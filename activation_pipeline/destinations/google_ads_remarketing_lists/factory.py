"""The `google_ads_remarketing_lists` destination type: Customer Match lists through the Data Manager API."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.google_ads_remarketing_lists.client import MAX_MEMBERS, GoogleAdsClient
from activation_pipeline.destinations.google_ads_remarketing_lists.server import GoogleAdsSandbox
from activation_pipeline.destinations.google_ads_remarketing_lists.settings import (
    GOOGLE_KEYS,
    GoogleAdsConnection,
    GoogleAdsDestination,
    GoogleAdsSettings,
)
from activation_pipeline.destinations.spec import (
    EVERY_SIX_HOURS,
    Capabilities,
    DestinationType,
    Finding,
    Loc,
    SecretLookup,
)
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: GoogleAdsSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = GoogleAdsSandbox(access_token=secret("access_token")).start()
    return server, server.url


def _check_destination(
    destination: GoogleAdsDestination, resolve: Callable[[str], Path]
) -> Iterator[Finding]:
    del resolve
    if not destination.settings.terms_of_service_accepted:
        yield (
            ("settings", "terms_of_service_accepted"),
            "Google requires accepting the Customer Match terms of service before uploading; set it to "
            "true once your Google Ads account has accepted them",
        )


def _check_connection(
    connection: Connection, destination: GoogleAdsDestination, names: Sequence[tuple[Loc, str]]
) -> Iterator[Finding]:
    del destination
    if connection.setup != "customized":
        return
    if not any(s.identifier == "email" and s.as_ == "email" for s in connection.id_sync):
        yield (
            ("id_sync",),
            "Google Ads requires email: add {identifier: email, as: email, strategy: ...} to id_sync, "
            "because every payload sends email as an identifier",
        )
    phones = [where for where, name in names if name == "phone"]
    for where in phones[1:]:
        yield (*where, "as"), "only one trait per audience may be mapped to Google as phone"


DESTINATION = DestinationType(
    type_name="google_ads_remarketing_lists",
    title="Google Ads Remarketing Lists (Customer Match)",
    kind="list",
    framework="list",
    trait_enrichment=True,
    id_sync=True,
    keys=GOOGLE_KEYS,
    model=GoogleAdsDestination,
    connection_settings=GoogleAdsConnection,
    defaults=Capabilities(
        max_batch=MAX_MEMBERS,
        records_per_request=MAX_MEMBERS,
        rate_limit=None,
        max_concurrent=None,
        addressed_by=("email", "phone", "ios.idfa", "android.id"),
    ),
    default_schedule=EVERY_SIX_HOURS,
    client=GoogleAdsClient,
    fake_server=GoogleAdsSandbox,
    fake=_fake,
    check_destination=_check_destination,
    check_connection=_check_connection,
    platform_limits="Data Manager API quotas; RESOURCE_EXHAUSTED with retryDelay",
)
