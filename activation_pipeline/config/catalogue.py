"""The destination catalogue: what each destination type is, supports, accepts, and its defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from activation_pipeline.config.destination_types import (
    FacebookConnection,
    GoogleAdsConnection,
    MarketoConnection,
    NoConnectionSettings,
)
from activation_pipeline.config.models import Model

HOURLY = "0 * * * *"
EVERY_SIX_HOURS = "0 */6 * * *"
EVERY_FIVE_MINUTES = "*/5 * * * *"

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


@dataclass(frozen=True)
class DestinationSpec:
    """A catalogue entry: kind, capabilities, accepted keys, limits and cadence of a destination type."""

    type_name: str
    title: str
    kind: Literal["list", "event"]
    framework: Literal["list", "actions", "function", "classic"]
    trait_enrichment: bool
    id_sync: bool
    keys: Mapping[str, str] | None
    """Destination names mappings may use, to the platform's own key; None: any name."""
    default_rate_limit: float | None
    """Requests per second; None: no fixed cap, the platform's throttle signals govern."""
    max_concurrent: int | None
    default_schedule: str
    max_batch: int
    connection_settings: type[Model]
    accepts_historical: bool = True
    platform_limits: str = ""
    addressed_by: tuple[str, ...] = ()
    """Identifier types of which a profile needs one to be sent at all; empty: any identifier will do."""

    @property
    def cadence(self) -> str:
        """Human description of the default schedule."""
        return {HOURLY: "hourly", EVERY_SIX_HOURS: "every 6 hours", EVERY_FIVE_MINUTES: "every 5 minutes"}[
            self.default_schedule
        ]


CATALOGUE: Mapping[str, DestinationSpec] = MappingProxyType(
    {
        spec.type_name: spec
        for spec in (
            DestinationSpec(
                type_name="facebook_custom_audiences",
                title="Facebook Custom Audiences",
                kind="list",
                framework="list",
                trait_enrichment=True,
                id_sync=True,
                keys=FACEBOOK_KEYS,
                default_rate_limit=None,
                max_concurrent=None,
                default_schedule=HOURLY,
                max_batch=10_000,
                connection_settings=FacebookConnection,
                platform_limits="Marketing API business-use-case limits; throttle codes 4, 17, 613, 80003",
            ),
            DestinationSpec(
                type_name="google_ads_remarketing_lists",
                title="Google Ads Remarketing Lists (Customer Match)",
                kind="list",
                framework="list",
                trait_enrichment=True,
                id_sync=True,
                keys=GOOGLE_KEYS,
                default_rate_limit=None,
                max_concurrent=None,
                default_schedule=EVERY_SIX_HOURS,
                max_batch=10_000,
                connection_settings=GoogleAdsConnection,
                addressed_by=("email", "phone", "ios.idfa", "android.id"),
                platform_limits="Data Manager API quotas; RESOURCE_EXHAUSTED with retryDelay",
            ),
            DestinationSpec(
                type_name="marketo_static_lists",
                title="Marketo Static Lists",
                kind="list",
                framework="list",
                trait_enrichment=True,
                id_sync=True,
                keys=None,
                default_rate_limit=5,
                max_concurrent=10,
                default_schedule=HOURLY,
                max_batch=300,
                connection_settings=MarketoConnection,
                addressed_by=("email",),
                platform_limits="100 calls per 20 s, 10 concurrent, 50,000 calls a day",
            ),
            DestinationSpec(
                type_name="braze",
                title="Braze",
                kind="event",
                framework="actions",
                trait_enrichment=True,
                id_sync=True,
                keys=None,
                default_rate_limit=100,
                max_concurrent=None,
                default_schedule=EVERY_FIVE_MINUTES,
                max_batch=75,
                connection_settings=NoConnectionSettings,
                addressed_by=("user_id", "email", "phone"),
            ),
            DestinationSpec(
                type_name="iterable",
                title="Iterable",
                kind="event",
                framework="actions",
                trait_enrichment=True,
                id_sync=True,
                keys=None,
                default_rate_limit=500,
                max_concurrent=None,
                default_schedule=EVERY_FIVE_MINUTES,
                max_batch=1000,
                connection_settings=NoConnectionSettings,
                addressed_by=("email", "user_id"),
            ),
            DestinationSpec(
                type_name="function",
                title="Destination function (Python)",
                kind="event",
                framework="function",
                trait_enrichment=True,
                id_sync=True,
                keys=None,
                default_rate_limit=50,
                max_concurrent=None,
                default_schedule=EVERY_FIVE_MINUTES,
                max_batch=100,
                connection_settings=NoConnectionSettings,
                addressed_by=("user_id", "anonymous_id"),
            ),
            DestinationSpec(
                type_name="webhook",
                title="Webhook (classic)",
                kind="event",
                framework="classic",
                trait_enrichment=False,
                id_sync=True,
                keys=None,
                default_rate_limit=50,
                max_concurrent=None,
                default_schedule=EVERY_FIVE_MINUTES,
                max_batch=1000,
                connection_settings=NoConnectionSettings,
                addressed_by=("user_id", "anonymous_id"),
            ),
        )
    }
)
