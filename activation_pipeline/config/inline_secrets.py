"""Secrets written into a workspace file instead of referenced from the environment, and tokens sent in clear.

A workspace file lives in version control and is shown in reviews and the Dagster UI: a credential in it is
leaked. Checked on the raw file, so every finding has its line: a plain value under a key that names a
credential (a webhook `Authorization` header, a function's `apiKey` setting), a URL with a password in it,
and a destination holding a secret whose URLs are plain `http://` to another machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

Loc = tuple[str | int, ...]

CREDENTIAL_WORDS = (
    "authorization", "apikey", "secret", "password", "passwd", "privatekey", "credential", "accesstoken",
    "authtoken", "apitoken", "refreshtoken", "sessiontoken",
)  # fmt: skip
CREDENTIAL_KEYS = frozenset({"token", "bearer"})
"""Key names (lowercase, without `-` and `_`) holding a credential: containing a word, or equal to a key."""

_URL_WITH_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]*:[^/@\s]+@", re.IGNORECASE)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_ADVICE = "reference an environment variable instead ({env: NAME})"


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    stack = [(loc, value)]
    while stack:
        here, item = stack.pop()
        yield here, item
        if isinstance(item, dict):
            stack.extend(((*here, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend(((*here, i), v) for i, v in reversed(list(enumerate(item))))


def _is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"env"}


def _is_credential_key(key: str | int) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "").replace("_", "")
    return name in CREDENTIAL_KEYS or any(word in name for word in CREDENTIAL_WORDS)


def _clear_url(value: Any) -> bool:
    """True for an http:// URL to another machine."""
    if not isinstance(value, str) or not value.lower().startswith("http://"):
        return False
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        return False
    return host not in _LOOPBACK and not host.startswith("127.")


def inline_secret_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """(location, message) for every credential written inline, URL password and clear-text token URL."""
    problems: list[tuple[Loc, str]] = []
    for loc, value in _walk(data, ()):
        if loc and _is_credential_key(loc[-1]) and isinstance(value, str) and value.strip():
            problems.append((loc, f"a credential written in the file; {_ADVICE}"))
        elif isinstance(value, str) and _URL_WITH_PASSWORD.match(value):
            problems.append((loc, f"a URL with a password in it; {_ADVICE}"))
    destinations = data.get("destinations")
    for i, destination in enumerate(destinations if isinstance(destinations, list) else []):
        items = list(_walk(destination, ("destinations", i)))
        if not any(_is_reference(value) for _, value in items):
            continue
        for loc, value in items:
            if _clear_url(value):
                problems.append(
                    (
                        loc,
                        "this destination sends a secret: use https:// (plain http:// only to this machine)",
                    )
                )
    return problems
