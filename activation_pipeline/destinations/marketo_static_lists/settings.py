"""Marketo Static Lists: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.durations import Window
from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.consent import ConsentTrait
from activation_pipeline.destinations.spec import HttpBase


class MarketoSettings(Model):
    """Marketo REST API access (OAuth client credentials)."""

    base_url: HttpBase = Field(description="https://<munchkin-id>.mktorest.com")
    client_id: Secret
    client_secret: Secret
    lookup_field: str = "email"


class MarketoConnection(Model):
    """The static list a connection fills, and who may be in it."""

    list_id: int = Field(ge=1)
    eligible_when: ConsentTrait | None = Field(
        default=None, description="consent trait a member needs to be added (revoked: removed)"
    )
    refresh_after: Window | None = Field(
        default=None, description="re-send members last acknowledged longer ago (static lists do not expire)"
    )


class MarketoDestination(DestinationBase):
    """Marketo Static Lists (list)."""

    type: Literal["marketo_static_lists"]
    settings: MarketoSettings
