"""Salesforce Marketing Cloud: the API access both SFMC types share, and the event type's data extensions."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.spec import HttpBase


class MarketingCloudAccess(Model):
    """An API integration of Installed Packages: the tenant's auth base URI and client credentials."""

    base_url: HttpBase = Field(
        description="the Authentication Base URI, https://<subdomain>.auth.marketingcloudapis.com "
        "(the REST base URI comes with the token)"
    )
    client_id: Secret
    client_secret: Secret
    account_id: str | None = Field(
        default=None, pattern=r"^[0-9]+$", description="MID of the business unit (default: the package's)"
    )


class MarketingCloudSettings(MarketingCloudAccess):
    """Where identify and track calls land: a contact data extension and an event data extension."""

    contact_data_extension_key: str | None = Field(
        default=None, min_length=1, description="external key of the data extension identify calls upsert"
    )
    event_data_extension_key: str | None = Field(
        default=None, min_length=1, description="external key of the data extension track calls add rows to"
    )
    subscriber_key_column: str = Field(default="SubscriberKey", min_length=1)


class MarketingCloudDestination(DestinationBase):
    """Salesforce Marketing Cloud (actions, events)."""

    type: Literal["salesforce_marketing_cloud"]
    settings: MarketingCloudSettings
