"""The `google_ads_remarketing_lists` destination type: Customer Match lists through the Data Manager API."""

from __future__ import annotations

from activation_pipeline.destinations.google_ads_remarketing_lists.client import MAX_MEMBERS, GoogleAdsClient
from activation_pipeline.destinations.google_ads_remarketing_lists.server import GoogleAdsSandbox
from activation_pipeline.destinations.google_ads_remarketing_lists.settings import (
    GOOGLE_KEYS,
    GoogleAdsConnection,
    GoogleAdsDestination,
    GoogleAdsSettings,
)
from activation_pipeline.destinations.spec import EVERY_SIX_HOURS, Capabilities, DestinationType, SecretLookup
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: GoogleAdsSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = GoogleAdsSandbox(access_token=secret("access_token")).start()
    return server, server.url


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
    platform_limits="Data Manager API quotas; RESOURCE_EXHAUSTED with retryDelay",
)
