"""Braze: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class BrazeSettings(Model):
    """Braze REST API access."""

    base_url: HttpBase = Field(description="your REST endpoint, e.g. https://rest.iad-01.braze.com")
    api_key: Secret
    update_existing_only: bool = False


class BrazeDestination(DestinationBase):
    """Braze (actions, events)."""

    type: Literal["braze"]
    settings: BrazeSettings
