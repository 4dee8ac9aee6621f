"""The `webhook` destination type: Segment-spec JSON sent to a URL, one message or one batch a request."""

from __future__ import annotations

from dataclasses import replace

from activation_pipeline.destinations.spec import (
    EVERY_FIVE_MINUTES,
    Capabilities,
    DestinationType,
    NoConnectionSettings,
    SecretLookup,
)
from activation_pipeline.destinations.webhook.client import WebhookClient
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.destinations.webhook.settings import WebhookDestination, WebhookSettings
from activation_pipeline.sandbox.base import SandboxServer


def _fake(settings: WebhookSettings, secret: SecretLookup) -> tuple[SandboxServer, str]:
    shared = secret("shared_secret") if settings.shared_secret else None
    server = WebhookSandbox(shared_secret=shared or None, method=settings.method).start()
    return server, server.hook_url


def _adjust(defaults: Capabilities, settings: WebhookSettings) -> Capabilities:
    """`batch_size` records a batch; in batch mode one request carries them all, else one request each."""
    per_request = settings.batch_size if settings.batch else 1
    return replace(defaults, max_batch=settings.batch_size, records_per_request=per_request)


DESTINATION = DestinationType(
    type_name="webhook",
    title="Webhook (classic)",
    kind="event",
    framework="classic",
    trait_enrichment=False,
    id_sync=True,
    keys=None,
    model=WebhookDestination,
    connection_settings=NoConnectionSettings,
    defaults=Capabilities(
        max_batch=WebhookSettings.model_fields["batch_size"].default,
        records_per_request=1,
        rate_limit=50,
        max_concurrent=None,
        addressed_by=("user_id", "anonymous_id"),
    ),
    default_schedule=EVERY_FIVE_MINUTES,
    client=WebhookClient,
    fake_server=WebhookSandbox,
    fake=_fake,
    adjust=_adjust,
)
