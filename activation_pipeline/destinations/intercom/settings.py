"""Intercom: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class IntercomSettings(Model):
    """Intercom REST API access (an access token of the workspace's app)."""

    base_url: HttpBase = Field(
        default="https://api.intercom.io",
        description="https://api.intercom.io, https://api.eu.intercom.io or https://api.au.intercom.io",
    )
    access_token: Secret
    api_version: str = Field(default="2.11", pattern=r"^\d+\.\d+$", description="sent as Intercom-Version")


class IntercomConnection(Model):
    """How a connection's audience shows in Intercom."""

    audience_as: Literal["tag", "attribute"] = Field(
        default="tag",
        description="tag: members carry a tag (added on entry, removed on exit); attribute: a boolean "
        "custom attribute named after the audience",
    )
    tag_name: str | None = Field(default=None, min_length=1, description="default: the audience key")


class IntercomDestination(DestinationBase):
    """Intercom (actions, events)."""

    type: Literal["intercom"]
    settings: IntercomSettings
