"""Customer.io: the destination's `settings` (Track API credentials and region)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class CustomerioSettings(Model):
    """Customer.io Track API access (Basic auth: site id and Track API key)."""

    base_url: HttpBase = Field(
        default="https://track.customer.io",
        description="https://track.customer.io (US) or https://track-eu.customer.io (EU)",
    )
    site_id: str = Field(min_length=1, description="the workspace's Site ID (Basic-auth user name)")
    api_key: Secret
    object_type_id: str = Field(
        default="1", pattern=r"^[0-9]+$", description="object type account-level traits (group calls) go to"
    )


class CustomerioDestination(DestinationBase):
    """Customer.io (actions, events)."""

    type: Literal["customerio"]
    settings: CustomerioSettings
