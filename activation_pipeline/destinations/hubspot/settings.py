"""HubSpot: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class HubSpotSettings(Model):
    """HubSpot CRM API access with a private app's access token."""

    base_url: HttpBase = "https://api.hubapi.com"
    access_token: Secret


class HubSpotConnection(Model):
    """The list an audience connection keeps (an ILS list id of a MANUAL list); traits need none."""

    list_id: str | None = Field(default=None, pattern=r"^[0-9]+$")


class HubSpotDestination(DestinationBase):
    """HubSpot (actions, events: contacts and list memberships)."""

    type: Literal["hubspot"]
    settings: HubSpotSettings
