"""Email normalisation: Meta's (trim, lowercase) and Google's (also gmail dots and +suffix removed)."""

from __future__ import annotations

import re

# One @, a non-empty local part, a dotted domain; no whitespace or list/quote separators.
_EMAIL = re.compile(r"[^@\s,;<>()\[\]\\\"]+@(?:[^@\s,;<>()\[\]\\\".]+\.)+[^@\s,;<>()\[\]\\\".]+")
_GOOGLE_MAIL = frozenset(("gmail.com", "googlemail.com"))
_match = _EMAIL.fullmatch


def normalise_email(value: str) -> str | None:
    """Trim and lowercase (Meta's rule; also Marketo lookups); None when it is not an email address."""
    v = value.strip().lower()
    return v if _match(v) is not None else None


def normalise_email_google(value: str) -> str | None:
    """Google's rule: drop all whitespace, lowercase; for gmail.com/googlemail.com drop dots and +suffix."""
    v = value.strip().lower()
    if " " in v or "\t" in v or "\n" in v or "\r" in v:
        v = "".join(v.split())
    if _match(v) is None:
        return None
    local, _, domain = v.rpartition("@")
    if domain in _GOOGLE_MAIL:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
        return f"{local}@{domain}"
    return v
