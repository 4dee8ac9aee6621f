"""One model per destination type: its typed `settings` and the per-connection options it takes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Discriminator, Field, Tag

from activation_pipeline.config.models import TAG, DestinationBase, Model, type_tag
from activation_pipeline.config.secrets import Secret

HttpBase = Annotated[
    str, Field(pattern=r"^https?://[^\s/]+(:\d+)?(/[^\s]*)?$", description="http(s) base URL")
]


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
    """The user list (Data Manager productDestinationId) a connection fills."""

    user_list_id: str = Field(pattern=r"^\d+$")


class MarketoSettings(Model):
    """Marketo REST API access (OAuth client credentials)."""

    base_url: HttpBase = Field(description="https://<munchkin-id>.mktorest.com")
    client_id: Secret
    client_secret: Secret
    lookup_field: str = "email"


class MarketoConnection(Model):
    """The static list a connection fills."""

    list_id: int = Field(ge=1)


class BrazeSettings(Model):
    """Braze REST API access."""

    base_url: HttpBase = Field(description="your REST endpoint, e.g. https://rest.iad-01.braze.com")
    api_key: Secret
    update_existing_only: bool = False


class IterableSettings(Model):
    """Iterable API access."""

    base_url: HttpBase = "https://api.iterable.com"
    api_key: Secret
    bulk: bool = Field(default=True, description="use users/bulkUpdate and events/trackBulk")


class FunctionSettings(Model):
    """A user function: `module:function`, or a .py file with on_identify / on_track handlers."""

    handler: str = Field(pattern=r"^([A-Za-z_][\w.]*:[A-Za-z_]\w*|[^\s]+\.py)$")
    settings: dict[str, str | Secret] = Field(default_factory=dict, description="passed to the function")


class WebhookSettings(Model):
    """A classic webhook: JSON POSTed to a URL, optionally signed with HMAC-SHA1."""

    url: HttpBase
    method: Literal["POST", "PUT", "PATCH"] = "POST"
    headers: dict[str, str | Secret] = Field(default_factory=dict)
    shared_secret: Secret | None = None
    batch: bool = False
    batch_size: int = Field(default=100, ge=1, le=1000)
    timeout_seconds: float = Field(default=30, gt=0, le=300)


class NoConnectionSettings(Model):
    """Event destinations take no per-connection options."""


class FacebookDestination(DestinationBase):
    """Facebook Custom Audiences (list)."""

    type: Literal["facebook_custom_audiences"]
    settings: FacebookSettings


class GoogleAdsDestination(DestinationBase):
    """Google Ads Remarketing Lists / Customer Match (list)."""

    type: Literal["google_ads_remarketing_lists"]
    settings: GoogleAdsSettings


class MarketoDestination(DestinationBase):
    """Marketo Static Lists (list)."""

    type: Literal["marketo_static_lists"]
    settings: MarketoSettings


class BrazeDestination(DestinationBase):
    """Braze (actions, events)."""

    type: Literal["braze"]
    settings: BrazeSettings


class IterableDestination(DestinationBase):
    """Iterable (actions, events)."""

    type: Literal["iterable"]
    settings: IterableSettings


class FunctionDestination(DestinationBase):
    """A destination function written in Python (events)."""

    type: Literal["function"]
    settings: FunctionSettings


class WebhookDestination(DestinationBase):
    """A classic webhook (events)."""

    type: Literal["webhook"]
    settings: WebhookSettings


DESTINATION_MODELS: dict[str, type[DestinationBase]] = {
    "facebook_custom_audiences": FacebookDestination,
    "google_ads_remarketing_lists": GoogleAdsDestination,
    "marketo_static_lists": MarketoDestination,
    "braze": BrazeDestination,
    "iterable": IterableDestination,
    "function": FunctionDestination,
    "webhook": WebhookDestination,
}

AnyDestination = (
    FacebookDestination
    | GoogleAdsDestination
    | MarketoDestination
    | BrazeDestination
    | IterableDestination
    | FunctionDestination
    | WebhookDestination
)

Destination = Annotated[
    Annotated[FacebookDestination, Tag(f"{TAG}facebook_custom_audiences")]
    | Annotated[GoogleAdsDestination, Tag(f"{TAG}google_ads_remarketing_lists")]
    | Annotated[MarketoDestination, Tag(f"{TAG}marketo_static_lists")]
    | Annotated[BrazeDestination, Tag(f"{TAG}braze")]
    | Annotated[IterableDestination, Tag(f"{TAG}iterable")]
    | Annotated[FunctionDestination, Tag(f"{TAG}function")]
    | Annotated[WebhookDestination, Tag(f"{TAG}webhook")],
    Discriminator(
        type_tag,
        custom_error_type="destination_type",
        custom_error_message=f"'type' must be one of: {', '.join(DESTINATION_MODELS)}",
    ),
]
