"""Iterable: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class IterableSettings(Model):
    """Iterable API access."""

    base_url: HttpBase = "https://api.iterable.com"
    api_key: Secret
    bulk: bool = Field(default=True, description="use users/bulkUpdate and events/trackBulk")


class IterableDestination(DestinationBase):
    """Iterable (actions, events)."""

    type: Literal["iterable"]
    settings: IterableSettings
