"""The `facebook_custom_audiences` destination type: a list destination filled through the Marketing API."""

from __future__ import annotations

from activation_pipeline.destinations.facebook_custom_audiences.client import MAX_ROWS, FacebookClient
from activation_pipeline.destinations.facebook_custom_audiences.server import FacebookSandbox
from activation_pipeline.destinations.facebook_custom_audiences.settings import (
    FACEBOOK_KEYS,
    FacebookConnection,
    FacebookDestination,
    FacebookSettings,
)
from activation_pipeline.destinations.spec import HOURLY, Capabilities, DestinationType, SecretLookup
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: FacebookSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    server = FacebookSandbox(access_token=secret("access_token")).start()
    return server, server.url


DESTINATION = DestinationType(
    type_name="facebook_custom_audiences",
    title="Facebook Custom Audiences",
    kind="list",
    framework="list",
    trait_enrichment=True,
    id_sync=True,
    keys=FACEBOOK_KEYS,
    model=FacebookDestination,
    connection_settings=FacebookConnection,
    defaults=Capabilities(
        max_batch=MAX_ROWS,
        records_per_request=MAX_ROWS,
        rate_limit=None,
        max_concurrent=None,
    ),
    default_schedule=HOURLY,
    client=FacebookClient,
    fake_server=FacebookSandbox,
    fake=_fake,
    platform_limits="Marketing API business-use-case limits; throttle codes 4, 17, 613, 80003",
)
