"""Names, gender and birth-date parts, normalised the way Meta and Google document them."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

_GIVEN_PREFIXES = frozenset(("mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "mme", "mlle"))
_FAMILY_SUFFIXES = frozenset(
    ("jr", "sr", "ii", "iii", "iv", "v", "2nd", "3rd", "4th", "phd", "md", "dds", "esq", "jnr", "snr")
)
_MALE = frozenset(("m", "male", "man", "boy"))
_FEMALE = frozenset(("f", "female", "woman", "girl"))
_MONTHS = {
    name: i
    for i, names in enumerate(
        (
            ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",),
            ("june", "jun"), ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"),
            ("october", "oct"), ("november", "nov"), ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}  # fmt: skip
_ISO_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?")
_COMPACT_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def text_of(value: Any) -> str | None:
    """A trait or identifier value as text (integers and whole floats as digits); None for other types."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None


def _letters_only(text: str, keep_spaces: bool) -> str:
    out = []
    for c in text:
        if c.isalpha() or unicodedata.category(c)[0] == "M":
            out.append(c)
        elif keep_spaces and c.isspace():
            out.append(" ")
    return " ".join("".join(out).split()) if keep_spaces else "".join(out)


def meta_name(value: str) -> str | None:
    """Meta FN/LN: lowercase letters only (no digits, punctuation or symbols), accents kept (UTF-8), single
    inner spaces."""
    v = _letters_only(unicodedata.normalize("NFC", value).lower(), keep_spaces=True)
    return v or None


def meta_first_initial(value: str) -> str | None:
    """Meta FI: the first letter of the normalised first name."""
    name = meta_name(value)
    return name[0] if name else None


def _tokens(value: str) -> list[str]:
    return unicodedata.normalize("NFC", value).strip().lower().split()


def google_given_name(value: str) -> str | None:
    """Google givenName: lowercase, trimmed, without prefixes such as `Mrs.`/`Dr.`."""
    tokens = _tokens(value)
    while len(tokens) > 1 and tokens[0].rstrip(".") in _GIVEN_PREFIXES:
        tokens.pop(0)
    return " ".join(tokens) or None


def google_family_name(value: str) -> str | None:
    """Google familyName: lowercase, trimmed, without suffixes such as `Jr.`/`III`."""
    tokens = _tokens(value)
    while len(tokens) > 1 and tokens[-1].rstrip(".,").rstrip(".") in _FAMILY_SUFFIXES:
        tokens.pop()
    if tokens:
        tokens[-1] = tokens[-1].rstrip(",")
    return " ".join(tokens) or None


def meta_gender(value: str) -> str | None:
    """Meta GEN: `m` or `f` (`M.`, `Male` understood); other values cannot be sent."""
    v = value.strip().lower().rstrip(".").strip()
    if v in _MALE:
        return "m"
    if v in _FEMALE:
        return "f"
    return None


def _date_parts(text: str) -> tuple[int, int, int] | None:
    m = _ISO_DATE.fullmatch(text) or _COMPACT_DATE.fullmatch(text)
    if m is None:
        return None
    y, mo, d = (int(g) for g in m.groups()[:3])
    try:
        date(y, mo, d)
    except ValueError:
        return None
    return y, mo, d


def _this_year() -> int:
    return datetime.now(UTC).year


def meta_birth_year(value: str) -> str | None:
    """Meta DOBY: `YYYY` between 1900 and this year; a full date gives its year."""
    v = value.strip().rstrip(".").strip()
    parts = _date_parts(v)
    year = parts[0] if parts else (int(v) if len(v) == 4 and v.isdigit() else None)
    if year is None or not 1900 <= year <= _this_year():
        return None
    return f"{year:04d}"


def meta_birth_month(value: str) -> str | None:
    """Meta DOBM: `01`..`12`; month names and full dates are understood."""
    v = value.strip().lower().rstrip(".")
    parts = _date_parts(v)
    if parts:
        month: int | None = parts[1]
    elif v.isdigit() and len(v) <= 2:
        month = int(v)
    else:
        month = _MONTHS.get(v)
    if month is None or not 1 <= month <= 12:
        return None
    return f"{month:02d}"


def meta_birth_day(value: str) -> str | None:
    """Meta DOBD: `01`..`31` (`4.` as written in German dates understood); a full date gives its day."""
    v = value.strip().rstrip(".").strip()
    parts = _date_parts(v)
    if parts:
        day: int | None = parts[2]
    elif v.isdigit() and len(v) <= 2:
        day = int(v)
    else:
        day = None
    if day is None or not 1 <= day <= 31:
        return None
    return f"{day:02d}"
