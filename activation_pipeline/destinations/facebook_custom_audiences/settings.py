"""Facebook Custom Audiences: the destination's `settings` and the per-connection options it takes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Literal

from pydantic import Field

from activation_pipeline.config.durations import Window
from activation_pipeline.config.models import DestinationBase, Model
from activation_pipeline.config.secrets import Secret
from activation_pipeline.destinations.consent import ConsentTrait
from activation_pipeline.destinations.spec import HttpBase

# Facebook: the names Segment lets you map (seed "Trait Enrichment"), each to its customer-file schema key.
FACEBOOK_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "email": "EMAIL",
        "phone": "PHONE",
        "context.device.advertisingId": "MADID",
        "firstName": "FN",
        "lastName": "LN",
        "gender": "GEN",
        "birthYear": "DOBY",
        "birthMonth": "DOBM",
        "birthday": "DOBD",
        "address.state": "ST",
        "address.city": "CT",
        "address.postalCode": "ZIP",
        "address.country": "COUNTRY",
        "externalId": "EXTERN_ID",
    }
)


class FacebookSettings(Model):
    """Meta Marketing API access for customer-file Custom Audiences."""

    ad_account_id: str = Field(pattern=r"^(act_)?\d+$")
    access_token: Secret
    api_version: str = Field(default="v24.0", pattern=r"^v\d+\.\d+$")
    base_url: HttpBase = "https://graph.facebook.com"
    customer_file_source: Literal[
        "USER_PROVIDED_ONLY", "PARTNER_PROVIDED_ONLY", "BOTH_USER_AND_PARTNER_PROVIDED"
    ] = "BOTH_USER_AND_PARTNER_PROVIDED"


class FacebookConnection(Model):
    """Which custom audience a connection fills (created on first sync when absent)."""

    audience_id: str | None = Field(default=None, pattern=r"^\d+$")
    audience_name: str | None = None
    eligible_when: ConsentTrait | None = Field(
        default=None, description="consent trait a member needs to be added (revoked: removed)"
    )
    refresh_after: Window | None = Field(
        default=timedelta(days=90),
        description="re-send members last acknowledged longer ago (Meta keeps external-id mappings for a "
        "limited time and deletes customer-file audiences unused for two years); null: never",
    )


class FacebookDestination(DestinationBase):
    """Facebook Custom Audiences (list)."""

    type: Literal["facebook_custom_audiences"]
    settings: FacebookSettings
