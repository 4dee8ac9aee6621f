"""Google Ads Remarketing Lists: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

from pydantic import Field, field_validator

from activation_pipeline.config.durations import Window
from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.consent import GoogleConsentTraits
from activation_pipeline.destinations.spec import HttpBase

# Google Data Manager: destination names and the user identifier each becomes.
GOOGLE_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "email": "emailAddress",
        "phone": "phoneNumber",
        "firstName": "address.givenName",
        "lastName": "address.familyName",
        "address.country": "address.regionCode",
        "address.postalCode": "address.postalCode",
        "context.device.advertisingId": "mobileData.mobileIds",
        "externalId": "userIdData.userId",
    }
)


MAX_MEMBERSHIP_LIFESPAN = timedelta(days=540)
"""Google Customer Match's longest membership lifespan."""


class Consent(Model):
    """EU user consent declared with Customer Match uploads."""

    ad_user_data: Literal["granted", "denied"] = "granted"
    ad_personalization: Literal["granted", "denied"] = "granted"


class GoogleAdsSettings(Model):
    """Google Data Manager API access for Customer Match lists."""

    operating_account_id: str = Field(pattern=r"^\d{3}-?\d{3}-?\d{4}$", description="Google Ads customer id")
    login_account_id: str | None = Field(default=None, pattern=r"^\d{3}-?\d{3}-?\d{4}$")
    access_token: Secret
    base_url: HttpBase = "https://datamanager.googleapis.com"
    encoding: Literal["HEX", "BASE64"] = "HEX"
    consent: Consent = Field(default_factory=Consent)
    terms_of_service_accepted: bool = Field(default=False, description="Customer Match terms accepted")


class GoogleAdsConnection(Model):
    """The user list (Data Manager productDestinationId) a connection fills, consent and membership upkeep."""

    user_list_id: str = Field(pattern=r"^\d+$")
    consent: GoogleConsentTraits | None = Field(
        default=None,
        description="consent per member from profile traits (replaces the destination's consent setting)",
    )
    refresh_after: Window | None = Field(
        default=timedelta(days=180),
        description="re-send members last acknowledged longer ago; keep it below the list's membership "
        "lifespan (at most 540 days); null: never",
    )

    @field_validator("refresh_after")
    @classmethod
    def _within_lifespan(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value > MAX_MEMBERSHIP_LIFESPAN:
            raise ValueError(
                "Customer Match drops members after the list's membership lifespan (at most 540 days): a "
                "refresh_after longer than 540d would let members expire; use e.g. 180d"
            )
        return value


class GoogleAdsDestination(DestinationBase):
    """Google Ads Remarketing Lists / Customer Match (list)."""

    type: Literal["google_ads_remarketing_lists"]
    settings: GoogleAdsSettings
