"""Salesforce Marketing Cloud Lists: the destination's `settings` and the per-connection data extension."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from activation_pipeline.config.durations import Window
from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.destinations.consent import ConsentTrait
from activation_pipeline.destinations.salesforce_marketing_cloud.settings import MarketingCloudAccess


class MarketingCloudListSettings(MarketingCloudAccess):
    """API access and the membership data extensions' column names."""

    subscriber_key_column: str = Field(default="SubscriberKey", min_length=1)
    member_column: str = Field(default="InAudience", min_length=1, description="boolean: in the audience")
    email_column: str | None = Field(default="EmailAddress", description="null: no email column")


class MarketingCloudListConnection(Model):
    """The data extension that holds a connection's audience membership."""

    data_extension_key: str = Field(min_length=1, description="external key of the membership data extension")
    eligible_when: ConsentTrait | None = Field(
        default=None, description="consent trait a member needs to be added (revoked: removed)"
    )
    refresh_after: Window | None = Field(
        default=None,
        description="re-send members last acknowledged longer ago (data extension rows do not expire)",
    )


class MarketingCloudListDestination(DestinationBase):
    """Salesforce Marketing Cloud Lists (list)."""

    type: Literal["salesforce_marketing_cloud_lists"]
    settings: MarketingCloudListSettings
