"""Google Data Manager's user identifier rules: which names feed which identifier, formatted Google's way."""

from __future__ import annotations

from types import MappingProxyType

from activation_pipeline.destinations.google_ads_remarketing_lists.settings import GOOGLE_KEYS
from activation_pipeline.destinations.normalise import address, person
from activation_pipeline.destinations.normalise.email import normalise_email_google
from activation_pipeline.destinations.normalise.phone import to_e164
from activation_pipeline.destinations.normalise.platforms import (
    FieldRule,
    PlatformRules,
    rules_by_key,
    simple,
)

GOOGLE = PlatformRules(
    name="google",
    fields=rules_by_key(
        FieldRule("emailAddress", "email", simple(normalise_email_google), hashed=True),
        FieldRule(
            "phoneNumber", "phone", lambda v, c: to_e164(v, c.phone_region, c.strict_phone), True, True
        ),
        FieldRule("address.givenName", "first_name", simple(person.google_given_name), hashed=True),
        FieldRule("address.familyName", "last_name", simple(person.google_family_name), hashed=True),
        FieldRule("address.regionCode", "country", simple(address.google_region), hashed=False),
        FieldRule("address.postalCode", "zip", lambda v, c: address.google_postal(v, c.country), False, True),
        FieldRule("mobileData.mobileIds", "mobile_id", simple(address.mobile_id), hashed=False),
        FieldRule("userIdData.userId", "external_id", simple(address.external_id), hashed=False),
    ),
    aliases=MappingProxyType(
        {
            **GOOGLE_KEYS,
            "ios.idfa": "mobileData.mobileIds",
            "android.id": "mobileData.mobileIds",
        }
    ),
)
"""Google Data Manager user identifiers with Google's formatting rules."""
