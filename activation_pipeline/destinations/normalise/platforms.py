"""Per-platform field rules: which input names feed which platform key, how each is normalised and hashed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from activation_pipeline.config.catalogue import FACEBOOK_KEYS, GOOGLE_KEYS
from activation_pipeline.destinations.normalise import address, person
from activation_pipeline.destinations.normalise.email import normalise_email, normalise_email_google
from activation_pipeline.destinations.normalise.phone import meta_phone, to_e164


@dataclass(frozen=True)
class FieldContext:
    """What a field's normaliser may need beyond the value: regions for phones, country for addresses."""

    phone_region: str
    country: str | None
    strict_phone: bool = False


Normalise = Callable[[str, FieldContext], "str | None"]


@dataclass(frozen=True)
class FieldRule:
    """One platform key: its metric kind, its normaliser and whether its value is SHA-256 hashed."""

    key: str
    kind: str
    normalise: Normalise
    hashed: bool
    contextual: bool = False
    """Whether the normaliser reads the record's context (phone region, country)."""


@dataclass(frozen=True)
class PlatformRules:
    """All field rules of one platform and the input names (destination names, identifier types) they take."""

    name: str
    fields: Mapping[str, FieldRule]
    aliases: Mapping[str, str]

    def resolve(self, name: str) -> FieldRule | None:
        """The rule for an input name (a destination name, identifier type or the platform key itself)."""
        key = self.aliases.get(name, name)
        return self.fields.get(key)


def _simple(fn: Callable[[str], str | None]) -> Normalise:
    return lambda value, _ctx: fn(value)


def _rules(*rules: FieldRule) -> Mapping[str, FieldRule]:
    return MappingProxyType({r.key: r for r in rules})


FACEBOOK = PlatformRules(
    name="facebook",
    fields=_rules(
        FieldRule("EXTERN_ID", "external_id", _simple(address.external_id), hashed=False),
        FieldRule("EMAIL", "email", _simple(normalise_email), hashed=True),
        FieldRule("PHONE", "phone", lambda v, c: meta_phone(v, c.phone_region, c.strict_phone), True, True),
        FieldRule("GEN", "gender", _simple(person.meta_gender), hashed=True),
        FieldRule("DOBY", "birth_year", _simple(person.meta_birth_year), hashed=True),
        FieldRule("DOBM", "birth_month", _simple(person.meta_birth_month), hashed=True),
        FieldRule("DOBD", "birth_day", _simple(person.meta_birth_day), hashed=True),
        FieldRule("LN", "last_name", _simple(person.meta_name), hashed=True),
        FieldRule("FN", "first_name", _simple(person.meta_name), hashed=True),
        FieldRule("FI", "first_initial", _simple(person.meta_first_initial), hashed=True),
        FieldRule("CT", "city", _simple(address.meta_city), hashed=True),
        FieldRule("ST", "state", lambda v, c: address.meta_state(v, c.country), True, True),
        FieldRule("ZIP", "zip", lambda v, c: address.meta_zip(v, c.country), True, True),
        FieldRule("MADID", "mobile_id", _simple(address.meta_madid), hashed=False),
        FieldRule("COUNTRY", "country", _simple(address.meta_country), hashed=True),
    ),
    aliases=MappingProxyType(
        {**FACEBOOK_KEYS, "ios.idfa": "MADID", "android.id": "MADID", "email": "EMAIL", "phone": "PHONE"}
    ),
)
"""Meta customer-file keys (multi-key schema order) with Meta's normalisation table."""

GOOGLE = PlatformRules(
    name="google",
    fields=_rules(
        FieldRule("emailAddress", "email", _simple(normalise_email_google), hashed=True),
        FieldRule(
            "phoneNumber", "phone", lambda v, c: to_e164(v, c.phone_region, c.strict_phone), True, True
        ),
        FieldRule("address.givenName", "first_name", _simple(person.google_given_name), hashed=True),
        FieldRule("address.familyName", "last_name", _simple(person.google_family_name), hashed=True),
        FieldRule("address.regionCode", "country", _simple(address.google_region), hashed=False),
        FieldRule("address.postalCode", "zip", lambda v, c: address.google_postal(v, c.country), False, True),
        FieldRule("mobileData.mobileIds", "mobile_id", _simple(address.mobile_id), hashed=False),
        FieldRule("userIdData.userId", "external_id", _simple(address.external_id), hashed=False),
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

FACEBOOK_SCHEMA: tuple[str, ...] = tuple(FACEBOOK.fields)
"""Meta's multi-key schema order (EXTERN_ID, EMAIL, PHONE, GEN, DOBY, DOBM, DOBD, LN, FN, FI, CT, ST, ZIP, MADID, COUNTRY)."""
