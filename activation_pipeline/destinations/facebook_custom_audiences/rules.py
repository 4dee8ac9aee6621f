"""Meta's customer-file rules: which names feed which key, normalised and hashed Meta's way."""

from __future__ import annotations

from types import MappingProxyType

from activation_pipeline.destinations.facebook_custom_audiences.settings import FACEBOOK_KEYS
from activation_pipeline.destinations.normalise import address, person
from activation_pipeline.destinations.normalise.email import normalise_email
from activation_pipeline.destinations.normalise.phone import meta_phone
from activation_pipeline.destinations.normalise.platforms import (
    FieldRule,
    PlatformRules,
    rules_by_key,
    simple,
)

FACEBOOK = PlatformRules(
    name="facebook",
    fields=rules_by_key(
        FieldRule("EXTERN_ID", "external_id", simple(address.external_id), hashed=False),
        FieldRule("EMAIL", "email", simple(normalise_email), hashed=True),
        FieldRule("PHONE", "phone", lambda v, c: meta_phone(v, c.phone_region, c.strict_phone), True, True),
        FieldRule("GEN", "gender", simple(person.meta_gender), hashed=True),
        FieldRule("DOBY", "birth_year", simple(person.meta_birth_year), hashed=True),
        FieldRule("DOBM", "birth_month", simple(person.meta_birth_month), hashed=True),
        FieldRule("DOBD", "birth_day", simple(person.meta_birth_day), hashed=True),
        FieldRule("LN", "last_name", simple(person.meta_name), hashed=True),
        FieldRule("FN", "first_name", simple(person.meta_name), hashed=True),
        FieldRule("FI", "first_initial", simple(person.meta_first_initial), hashed=True),
        FieldRule("CT", "city", simple(address.meta_city), hashed=True),
        FieldRule("ST", "state", lambda v, c: address.meta_state(v, c.country), True, True),
        FieldRule("ZIP", "zip", lambda v, c: address.meta_zip(v, c.country), True, True),
        FieldRule("MADID", "mobile_id", simple(address.meta_madid), hashed=False),
        FieldRule("COUNTRY", "country", simple(address.meta_country), hashed=True),
    ),
    aliases=MappingProxyType(
        {**FACEBOOK_KEYS, "ios.idfa": "MADID", "android.id": "MADID", "email": "EMAIL", "phone": "PHONE"}
    ),
)
"""Meta customer-file keys (multi-key schema order) with Meta's normalisation table."""

FACEBOOK_SCHEMA: tuple[str, ...] = tuple(FACEBOOK.fields)
"""Meta's multi-key schema order (EXTERN_ID, EMAIL, PHONE, GEN, DOBY, DOBM, DOBD, LN, FN, FI, CT, ST, ZIP, MADID, COUNTRY)."""
