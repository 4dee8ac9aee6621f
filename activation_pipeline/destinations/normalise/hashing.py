"""SHA-256 hashing, encodings and detection of values that are already SHA-256 digests."""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import re
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any, cast

_SHA256 = hashlib.sha256


def _builtin_sha256() -> Callable[[bytes], Any]:
    """CPython's own SHA-256 (HACL*/builtin): same digests, less per-call overhead than OpenSSL's."""
    for name in ("_sha2", "_sha256"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        fn = getattr(module, "sha256", None)
        if callable(fn) and fn(b"abc").hexdigest() == _SHA256(b"abc").hexdigest():
            return cast(Callable[[bytes], Any], fn)
    return _SHA256


fast_sha256 = _builtin_sha256()
"""SHA-256 constructor tuned for short inputs (identifiers); falls back to hashlib's."""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_B64_32 = re.compile(r"[A-Za-z0-9+/]{43}=")


class Encoding(StrEnum):
    """How a digest goes on the wire (Google's Data Manager declares this per request)."""

    HEX = "HEX"
    BASE64 = "BASE64"


def is_sha256_hex(value: str) -> bool:
    """True when `value` is a SHA-256 digest written as 64 hex characters (either case)."""
    return len(value) == 64 and _HEX64.fullmatch(value) is not None


def is_sha256_base64(value: str) -> bool:
    """True when `value` is a SHA-256 digest in standard Base64 (44 characters, one `=`)."""
    return len(value) == 44 and _B64_32.fullmatch(value) is not None


def sha256_hex(text: str) -> str:
    """The lowercase hex SHA-256 of the UTF-8 bytes of `text`."""
    return str(fast_sha256(text.encode()).hexdigest())


def sha256_hex_many(texts: Iterable[str]) -> list[str]:
    """Lowercase hex SHA-256 of many strings in one tight loop (the fast path for large batches)."""
    sha = fast_sha256
    return [sha(t.encode()).hexdigest() for t in texts]


def hex_to_base64(hex_digest: str) -> str:
    """Re-encode a hex digest as standard Base64 of the same bytes."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


def base64_to_hex(b64_digest: str) -> str:
    """Re-encode a Base64 digest as lowercase hex of the same bytes."""
    return base64.b64decode(b64_digest, validate=True).hex()


def prehashed(value: str, encoding: Encoding = Encoding.HEX) -> str | None:
    """If `value` (already trimmed) is a SHA-256 digest, return it in `encoding`; otherwise None.

    Hex input is lowercased; Base64 input (44 characters) is accepted too and converted as needed.
    The check runs before any normalisation, so a digest is never hashed a second time.
    """
    n = len(value)
    if n == 64 and _HEX64.fullmatch(value) is not None:
        low = value.lower()
        return low if encoding is Encoding.HEX else hex_to_base64(low)
    if n == 44 and _B64_32.fullmatch(value) is not None:
        try:
            hexd = base64_to_hex(value)
        except (binascii.Error, ValueError):
            return None
        return hexd if encoding is Encoding.HEX else value
    return None
