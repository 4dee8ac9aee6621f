"""The canonical form of identifier values: the one place that decides when two written values are the same.

Ingest stores identifiers in this form, identity resolution compares blocked values in it, and the ledger
lookup turns a bare string into every form it could take. Destinations format for their platforms on top
of it (`destinations.normalise`), never instead of it.

- email: trimmed and lower-cased.
- phone: E.164 when `phonenumbers` reads it as a possible number (national forms use the workspace's
  default region), else its digits with any `+` kept: exactly what ingest has always stored, so data
  already landed keeps matching.
- everything else (user_id, anonymous_id, ios.idfa, android.id, custom identifiers, alias previous ids):
  trimmed, case kept. Advertising ids are case-insensitive UUIDs, but landed data holds them as sent;
  lower-casing now would split those profiles, and ledger search keys are case-insensitive anyway.
"""

from __future__ import annotations

import re
from functools import lru_cache

import phonenumbers

EMAIL = "email"
PHONE = "phone"
ANY_ID = "id"
"""Candidate type of a bare lookup string taken as it is: a user id, anonymous id, device id, custom id or profile id."""

# Only what people type in phone numbers: digits, separators, brackets, a leading + and nothing alphabetic,
# so user ids and hashes are never read as phones by the lookup.
_PHONE_SHAPED = re.compile(r"\+?[\d\s().\-/]*\d[\d\s().\-/]*")


def _e164(raw: str, region: str | None) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@lru_cache(maxsize=500_000)
def canonical_phone(raw: str, region: str) -> str:
    """E.164 form of a phone number when it parses (national forms use the default region), else its digits."""
    e164 = _e164(raw, region)
    if e164 is not None:
        return e164
    digits = "".join(ch for ch in raw if ch.isdigit() or ch == "+")
    return digits or raw.strip()


def canonical_email(raw: str) -> str:
    """Trimmed, lower-cased email address (no validation: matching keeps what was sent)."""
    return raw.strip().lower()


def _text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        return None
    return value.strip() or None


def canonical_identifier(identifier_type: str, value: object, region: str) -> str | None:
    """The matching form of one identifier value of a known type; None when it is empty or not text/number."""
    text = _text(value)
    if text is None:
        return None
    if identifier_type == EMAIL:
        return text.lower()
    if identifier_type == PHONE:
        return canonical_phone(text, region)
    return text


def lookup_candidates(value: str, region: str) -> list[tuple[str, str]]:
    """Every (type, canonical value) a bare string of unknown type could be: email, phone, and the id itself."""
    text = value.strip()
    if not text:
        return []
    found: list[tuple[str, str]] = []
    if "@" in text:
        found.append((EMAIL, canonical_email(text)))
    if _PHONE_SHAPED.fullmatch(text):
        phone = canonical_phone(text, region)
        found.append((PHONE, phone))
        if not phone.startswith("+"):
            # Not a national number of the region: it may be international without its + (or with 00).
            digits = "".join(ch for ch in text if ch.isdigit())
            international = _e164("+" + (digits[2:] if text.startswith("00") else digits), None)
            if international is not None:
                found.append((PHONE, international))
    found.append((ANY_ID, text))
    return found
