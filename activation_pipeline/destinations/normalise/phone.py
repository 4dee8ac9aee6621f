"""Phone numbers to E.164 with the `phonenumbers` library, a region, and `is_valid_number` validation."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

_E164 = PhoneNumberFormat.E164
_POSSIBLE = ValidationResult.IS_POSSIBLE
_LEAD_JUNK = " \t\r\n\"'()[]-./"


def _acceptable(number: phonenumbers.PhoneNumber, strict: bool) -> bool:
    if strict:
        return bool(phonenumbers.is_valid_number(number))
    return phonenumbers.is_possible_number_with_reason(number) == _POSSIBLE


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except NumberParseException:
        return None


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return str(phonenumbers.format_number(number, _E164))


@lru_cache(maxsize=65_536)
def to_e164(value: str, region: str = "US", strict: bool = True) -> str | None:
    """`+<country code><number>` for a phone typed any usual way, or None when it cannot be one.

    `+` and `00` mean international; otherwise the number is read in `region` (the record's country, else
    the workspace's default region). With `strict` (the default) the result must be a valid number
    (`phonenumbers.is_valid_number`: right length *and* an allocated range); without, a possible length is
    enough. Digits without `+` that already start with the region's country code are read as international
    when that reading is valid (`4915123456789` on a DE record is +49 1512..., not +49 4915...), and digits
    that are not a number of the region are tried once as international and must then be valid.
    """
    text = value.strip().lstrip(_LEAD_JUNK)
    if not text or sum(c.isdigit() for c in text) < 6:
        return None
    if text.startswith("00"):
        text = "+" + text[2:].lstrip(_LEAD_JUNK)
    region = region.upper() if region else "US"
    if text.startswith("+"):
        number = _parse(text, None)
        return _e164(number) if number is not None and _acceptable(number, strict) else None
    digits = "".join(c for c in text if c.isdigit())
    international = _parse("+" + digits, None)
    if international is not None and not phonenumbers.is_valid_number(international):
        international = None
    code = phonenumbers.country_code_for_region(region)
    if international is not None and code and international.country_code == code:
        return _e164(international)
    number = _parse(text, region)
    if number is not None and _acceptable(number, strict):
        return _e164(number)
    return _e164(international) if international is not None else None


def meta_phone(value: str, region: str = "US", strict: bool = True) -> str | None:
    """Meta's PHONE form: E.164 digits with the country code and no `+` (no leading zeros, no symbols)."""
    e164 = to_e164(value, region, strict)
    return e164[1:] if e164 is not None else None
