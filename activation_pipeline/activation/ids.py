"""Deterministic ids: the same change always yields the same change id and messageIds."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace; datetimes as ISO strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_default, ensure_ascii=False)


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON values, with numbers compared by value (a JSON column gives 0 back for 0.0)."""
    if (
        isinstance(a, int | float)
        and isinstance(b, int | float)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return canonical_json(a) == canonical_json(b)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_timestamp(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=canonical_json) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def digest(*parts: Any, length: int = 32) -> str:
    """A hex sha256 prefix of the canonical JSON of `parts`."""
    return hashlib.sha256(canonical_json(list(parts)).encode()).hexdigest()[:length]


def iso_timestamp(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and a Z, as Segment writes timestamps."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change_id(
    connection_id: str, subject_key: str, kind: str, new_value: Any, as_of: datetime, generation: str = ""
) -> str:
    """The id of one change of one subject in one connection (`generation`: a resync's own id)."""
    parts = [connection_id, subject_key, kind, new_value, iso_timestamp(as_of)]
    return "chg_" + digest(*parts, *([generation] if generation else []))


def message_id(change: str, message_type: str, variant: str = "") -> str:
    """The messageId of one message of a change (`variant` distinguishes per-identifier fan-out)."""
    return "ap_" + digest(change, message_type, variant)


def lookup_key(value: str) -> str:
    """sha256 hex of the trimmed, lower-cased identifier value."""
    # Values are already canonical (activation_pipeline.identifiers); lower-casing on top keeps the search
    # case-insensitive for ids and keeps the keys already stored valid.
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()
