"""Phone numbers to E.164 with the `phonenumbers` library and a default region."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

_E164 = PhoneNumberFormat.E164
_POSSIBLE = ValidationResult.IS_POSSIBLE
_LEAD_JUNK = " \t\r\n\"'()[]-./"


def _possible(number: phonenumbers.PhoneNumber, strict: bool) -> bool:
    if strict:
        return bool(phonenumbers.is_valid_number(number))
    return phonenumbers.is_possible_number_with_reason(number) == _POSSIBLE


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


@lru_cache(maxsize=65_536)
def to_e164(value: str, region: str = "US", strict: bool = False) -> str | None:
    """`+<country code><number>` for a phone typed any usual way, or None when it cannot be one.

    National forms use `region` (ISO alpha-2); `00` and `+` international prefixes are understood.
    A number is accepted when its length is possible for its country (`strict`: when it is in an
    allocated range too). Digits without `+` that are not a possible national number are tried once
    as international, and then must be a valid number.
    """
    text = value.strip().lstrip(_LEAD_JUNK)
    if not text or sum(c.isdigit() for c in text) < 6:
        return None
    if text.startswith("00"):
        text = "+" + text[2:].lstrip(_LEAD_JUNK)
    region = region.upper() if region else "US"
    number = _parse(text, None if text.startswith("+") else region)
    if number is not None and _possible(number, strict):
        return str(phonenumbers.format_number(number, _E164))
    if text.startswith("+"):
        return None
    digits = "".join(c for c in text if c.isdigit())
    number = _parse("+" + digits, None)
    if number is not None and phonenumbers.is_valid_number(number):
        return str(phonenumbers.format_number(number, _E164))
    return None


def meta_phone(value: str, region: str = "US", strict: bool = False) -> str | None:
    """Meta's PHONE form: E.164 digits with the country code and no `+` (no leading zeros, no symbols)."""
    e164 = to_e164(value, region, strict)
    return e164[1:] if e164 is not None else None
