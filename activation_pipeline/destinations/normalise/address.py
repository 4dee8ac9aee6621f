"""City, state, postal code and country normalisation (Meta's table; Google's unhashed address fields)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from activation_pipeline.destinations.normalise.countries import ALPHA2, ALPHA3, NAMES

US_STATES: dict[str, str] = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "district of columbia": "dc",
    "florida": "fl", "georgia": "ga", "hawaii": "hi", "idaho": "id", "illinois": "il", "indiana": "in",
    "iowa": "ia", "kansas": "ks", "kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md",
    "massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms", "missouri": "mo",
    "montana": "mt", "nebraska": "ne", "nevada": "nv", "new hampshire": "nh", "new jersey": "nj",
    "new mexico": "nm", "new york": "ny", "north carolina": "nc", "north dakota": "nd", "ohio": "oh",
    "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa", "rhode island": "ri",
    "south carolina": "sc", "south dakota": "sd", "tennessee": "tn", "texas": "tx", "utah": "ut",
    "vermont": "vt", "virginia": "va", "washington": "wa", "west virginia": "wv", "wisconsin": "wi",
    "wyoming": "wy", "puerto rico": "pr", "guam": "gu", "american samoa": "as",
    "northern mariana islands": "mp", "us virgin islands": "vi", "virgin islands": "vi",
    "washington dc": "dc", "washington d c": "dc",
}  # fmt: skip
_US_CODES = frozenset(US_STATES.values())

# Names and codes people write for countries beyond ISO 3166-1's codes and names (see `countries`).
COUNTRY_ALIASES: dict[str, str] = {
    "uk": "GB", "united kingdom": "GB", "great britain": "GB", "britain": "GB",
    "england": "GB", "scotland": "GB", "wales": "GB", "northern ireland": "GB",
    "usa": "US", "united states": "US", "united states of america": "US",
    "america": "US", "deutschland": "DE", "espana": "ES", "holland": "NL", "the netherlands": "NL",
    "russia": "RU", "south korea": "KR", "korea": "KR", "vietnam": "VN", "iran": "IR", "syria": "SY",
    "laos": "LA", "bolivia": "BO", "venezuela": "VE", "tanzania": "TZ", "moldova": "MD",
    "czech republic": "CZ", "turkey": "TR", "ivory coast": "CI", "cape verde": "CV",
}  # fmt: skip
_US_ZIP = re.compile(r"(\d{5})(?:[-\s]?\d{4})?")
_UK_POSTCODE = re.compile(r"([A-Z]{1,2}\d[A-Z\d]?)\s*(\d)[A-Z]{2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"


def _fold(value: str) -> str:
    """Lowercase words without punctuation, single-spaced (for table lookups); dotted initials joined.

    `N.Y.`, `D.C.`, `G.B.`, `U.S.A.` fold to `ny`, `dc`, `gb`, `usa`: a run of one-letter words is an
    abbreviation written with dots or spaces, not separate words.
    """
    chars = [c if c.isalnum() else " " for c in unicodedata.normalize("NFC", value).lower()]
    words = "".join(chars).split()
    if len(words) > 1 and all(len(w) == 1 for w in words):
        return "".join(words)
    return " ".join(words)


def _ascii_fold(value: str) -> str:
    """`_fold` without accents (`España` -> `espana`), for country names."""
    decomposed = unicodedata.normalize("NFKD", value)
    return _fold("".join(c for c in decomposed if unicodedata.category(c)[0] != "M"))


def _alnum(value: str) -> str:
    return "".join(
        c
        for c in unicodedata.normalize("NFC", value).lower()
        if c.isalnum() or unicodedata.category(c)[0] == "M"
    )


@lru_cache(maxsize=4096)
def country_code(value: str) -> str | None:
    """ISO 3166-1 alpha-2 (uppercase) for an alpha-2 or alpha-3 code or an English name; None if unknown.

    The full ISO 3166-1 list is accepted (AQ, BV, GS, HM, PN, TF, UM included); codes outside it (AC, TA,
    XK, EU, UK as a code) are not ISO countries, though `UK` is understood as the common name of GB.
    """
    folded = _ascii_fold(value)
    upper = folded.upper()
    if len(folded) == 2 and upper in ALPHA2:
        return upper
    if len(folded) == 3 and upper in ALPHA3:
        return ALPHA3[upper]
    return COUNTRY_ALIASES.get(folded) or NAMES.get(folded)


def meta_country(value: str) -> str | None:
    """Meta COUNTRY: ISO alpha-2, lowercase."""
    code = country_code(value)
    return code.lower() if code else None


def google_region(value: str) -> str | None:
    """Google regionCode: ISO alpha-2, uppercase, not hashed."""
    return country_code(value)


def meta_city(value: str) -> str | None:
    """Meta CT: lowercase letters (accents kept) and digits only, no spaces or punctuation."""
    return _alnum(value) or None


def meta_state(value: str, country: str | None = None) -> str | None:
    """Meta ST: US states as their 2-letter ANSI code (names mapped), lowercase; elsewhere letters only."""
    folded = _fold(value)
    if not folded:
        return None
    code = US_STATES.get(folded)
    if code is not None and country in (None, "US"):
        return code
    if country == "US":
        return folded if folded in _US_CODES else None
    return _alnum(value) or None


def meta_zip(value: str, country: str | None = None) -> str | None:
    """Meta ZIP: US first 5 digits; UK area+district+sector; else lowercase without spaces or dashes."""
    v = value.strip().upper()
    if not v:
        return None
    us = _US_ZIP.fullmatch(v)
    if us is not None and country in (None, "US"):
        return us.group(1)
    if country in (None, "GB"):
        uk = _UK_POSTCODE.fullmatch(v)
        if uk is not None:
            return (uk.group(1) + uk.group(2)).lower()
    if country == "US":
        return None
    out = _alnum(v)
    return out or None


def google_postal(value: str, country: str | None = None) -> str | None:
    """Google postalCode (not hashed): US 5 digits (from 5 or 5+4); elsewhere trimmed, single-spaced."""
    v = " ".join(value.strip().upper().split())
    if not v:
        return None
    us = _US_ZIP.fullmatch(v)
    if us is not None and country in (None, "US"):
        return us.group(1)
    if country == "US":
        return None
    return v if any(c.isalnum() for c in v) else None


def mobile_id(value: str) -> str | None:
    """An IDFA/AAID (UUID with hyphens), trimmed; the all-zero id (tracking limited) is not an id."""
    v = value.strip()
    if _UUID.fullmatch(v) is None or v == _ZERO_UUID:
        return None
    return v


def meta_madid(value: str) -> str | None:
    """Meta MADID: the advertising id, lowercase, hyphens kept, not hashed."""
    v = mobile_id(value)
    return v.lower() if v else None


def external_id(value: str) -> str | None:
    """An advertiser's own id (Meta EXTERN_ID, Google userId): trimmed text, not hashed."""
    v = value.strip()
    return v or None
