"""Classic webhooks: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class WebhookSettings(Model):
    """A classic webhook: JSON POSTed to a URL, optionally signed with HMAC-SHA1."""

    url: HttpBase
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str | Secret] = Field(default_factory=dict)
    shared_secret: Secret | None = None
    batch: bool = False
    batch_size: int = Field(default=100, ge=1, le=1000)
    timeout_seconds: float = Field(default=30, gt=0, le=300)


class WebhookDestination(DestinationBase):
    """A classic webhook (events)."""

    type: Literal["webhook"]
    settings: WebhookSettings
