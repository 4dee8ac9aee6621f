"""What a destination answers is stored in the ledger, but never a secret and never without bound.

Platforms sometimes echo a request back in an error (a 401 or 500 body quoting the headers). Before an answer or
a reason is stored, every secret value this process resolved is replaced, so are credentials that follow
`Authorization`, `Bearer`, `api_key`, `access_token`, ... and an answer larger than `MAX_STORED_BYTES` is kept
as its first part and its size.
"""

from __future__ import annotations

import json
import re
from typing import Any

from activation_pipeline.config.secrets import RESOLVED

MAX_STORED_BYTES = 64 * 1024
"""The most of one record's answer the ledger keeps."""
REDACTED = "[redacted]"
_MIN_SECRET = 6  # shorter values would redact ordinary words
_CREDENTIAL = re.compile(
    r"(?i)\b(authorization|bearer|basic|api[_-]?key|access[_-]?token|client[_-]?secret|password|x-api-key)"
    r"(\"?\s*[:=]\s*\"?|\s+)(?:bearer\s+|basic\s+)?[A-Za-z0-9._~+/=-]{6,}"
)


def redact_text(text: str) -> str:
    """`text` without the secrets this process knows, nor credentials written after their usual names."""
    for secret in sorted((s for s in RESOLVED if len(s) >= _MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def stored_answer(value: Any) -> Any:
    """A destination's answer as the ledger keeps it: redacted, and cut to MAX_STORED_BYTES."""
    if value is None:
        return None
    text = redact_text(json.dumps(value, default=str, ensure_ascii=False))
    size = len(text.encode())
    if size > MAX_STORED_BYTES:
        return {"truncated": True, "bytes": size, "head": text[: MAX_STORED_BYTES // 8]}
    try:
        loaded: Any = json.loads(text)
    except ValueError:  # a redaction cut through JSON syntax: keep the text
        return {"text": text}
    return loaded


def stored_reason(reason: str | None) -> str | None:
    """A failure reason as the ledger keeps it: redacted and at most a few thousand characters."""
    if not reason:
        return None
    text = redact_text(reason)
    return text if len(text) <= 4000 else text[:4000] + "…"
