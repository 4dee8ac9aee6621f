"""Bulk email normalise-and-hash: the tight loop for large lists and the hashing benchmark.

Per chunk: trim, lowercase and encode every value in one comprehension; one byte-translation of the joined
bytes finds unusual characters (whitespace inside, separators, quotes, Unicode spaces) and substring searches
find `..`, `@.` and a final `.`; `bytes.find` / `bytes.rfind` mapped over the values check for exactly one
`@` and a dot in the domain. Values that look like anything but a plain address (including pre-hashed ones)
go through the exact per-value rules of `email`; the rest are hashed in one loop. The results are identical
to `normalise_email` / `normalise_email_google` followed by SHA-256 (a test checks this on random input).
"""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import accumulate, repeat
from multiprocessing import get_context

from activation_pipeline.destinations.normalise.email import normalise_email, normalise_email_google
from activation_pipeline.destinations.normalise.hashing import (
    _HEX64,
    Encoding,
    fast_sha256,
    hex_to_base64,
)

_UNUSUAL = frozenset(b' \t\r\n\x0b\x0c\x1c\x1d\x1e\x1f,;<>()[]\\"\xc2\xe1\xe2\xe3')
"""Bytes that may start something the exact rules refuse: ASCII whitespace and separators, and the UTF-8 lead
bytes of every Unicode whitespace character (U+0085, U+00A0, U+1680, U+2000-U+205F, U+3000)."""
_MARK = bytes(0 if i in _UNUSUAL else 1 for i in range(256))
_GMAIL = ("@gmail.com", "@googlemail.com")
_BLANK = " " * 64
CHUNK = 8192


def _exact(raw: str, google: bool) -> str | None:
    v = raw.strip()
    if len(v) == 64 and _HEX64.fullmatch(v) is not None:
        return v.lower()
    n = normalise_email_google(v) if google else normalise_email(v)
    return fast_sha256(n.encode()).hexdigest() if n is not None else None


def _gmail(v: str) -> str:
    local, _, domain = v.rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{domain}" if local else "@"


def _unusual(values: list[bytes]) -> set[int]:
    """Indices of values with an unusual byte, `..`, `@.` or a final `.` (false positives only cost time)."""
    joined = b"\x00".join(values) + b"\x00"
    ends = list(accumulate(len(v) + 1 for v in values))
    found: set[int] = set()
    marked = joined.translate(_MARK)
    at = marked.find(0)
    while at >= 0:
        k = bisect_right(ends, at)
        found.add(k)
        at = marked.find(0, ends[k]) if k < len(ends) else -1
    for seq in (b"..", b"@.", b".\x00"):
        at = joined.find(seq)
        while at >= 0:
            found.add(bisect_right(ends, at))
            at = joined.find(seq, at + 1)
    return found


def _chunk(raw: Sequence[str], google: bool) -> list[str | None]:
    if google:
        enc = [(_gmail(v) if v.endswith(_GMAIL) else v).encode() for v in (r.strip().lower() for r in raw)]
    else:
        enc = [v.strip().lower().encode() for v in raw]
    exact = _unusual(enc)
    ats = list(map(bytes.find, enc, repeat(b"@")))
    rats = list(map(bytes.rfind, enc, repeat(b"@")))
    dots = list(map(bytes.rfind, enc, repeat(b".")))
    exact.update(
        i for i, (a, r, d) in enumerate(zip(ats, rats, dots, strict=True)) if not (0 < a == r and d - a >= 2)
    )
    sha = fast_sha256
    out: list[str | None] = [sha(b).hexdigest() for b in enc]
    for i in exact:
        out[i] = _exact(raw[i], google)
    return out


def hash_emails(
    values: Sequence[str], google: bool = False, encoding: Encoding = Encoding.HEX
) -> list[str | None]:
    """Normalise and SHA-256 raw emails (Meta rules, or Google's with `google`); None where not an email.

    Values that already are 64-hex SHA-256 digests pass through lowercased.
    """
    out: list[str | None] = []
    for start in range(0, len(values), CHUNK):
        out.extend(_chunk(values[start : start + CHUNK], google))
    if encoding is Encoding.BASE64:
        return [hex_to_base64(d) if d is not None else None for d in out]
    return out


_SHARED: Sequence[str] = ()


def _part(args: tuple[int, int, bool]) -> str:
    """Hash `_SHARED[lo:hi]` (inherited by the forked worker) into one string of 64-character slots."""
    lo, hi, google = args
    return "".join(d if d is not None else _BLANK for d in hash_emails(_SHARED[lo:hi], google))


def hash_emails_parallel(
    values: Sequence[str], google: bool = False, processes: int | None = None, part: int | None = None
) -> list[str | None]:
    """`hash_emails` (hex) over forked worker processes, for backfills of millions (hashing holds the GIL).

    Workers inherit the input (no pickling of values) and send back one string per part.
    """
    global _SHARED
    workers = processes or min(os.cpu_count() or 1, 8)
    size = part or max(CHUNK, -(-len(values) // (workers * 2)))
    if workers <= 1 or len(values) <= size:
        return hash_emails(values, google)
    _SHARED = values
    try:
        ranges = [(lo, min(lo + size, len(values)), google) for lo in range(0, len(values), size)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("fork")) as pool:
            slots = list(pool.map(_part, ranges))
    finally:
        _SHARED = ()
    out: list[str | None] = []
    for text in slots:
        out.extend(None if text[i] == " " else text[i : i + 64] for i in range(0, len(text), 64))
    return out
