"""Corrupt copies of valid Segment lines into the malformed shapes real pipelines receive."""

from __future__ import annotations

import json
from collections.abc import Callable
from random import Random
from typing import Any

from activation_pipeline.synthetic.identity import uuid4_text

MALFORMED_KINDS: tuple[str, ...] = (
    "truncated_json",
    "not_an_object",
    "missing_identity",
    "track_without_event",
    "unknown_type",
    "bad_timestamp",
    "properties_not_object",
)
"""Every kind of malformed line the generator emits, in the order it cycles through them."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NOT_OBJECTS = ("[1,2]", "[1,2,3]", '"track"', "null", "42", '[{"type":"track"}]')
_UNKNOWN_TYPES = ("trak", "pageview", "identity", "custom_event", "userEvent")
_DROP_FOR_TRACK = ("traits", "name", "groupId", "previousId", "category")


class Corrupter:
    """Turns a valid JSON line into one malformed line, cycling through MALFORMED_KINDS."""

    def __init__(self, rng: Random, encode: Callable[[Any], str]) -> None:
        """Use rng for all choices and encode to serialise corrupted objects."""
        self.rng = rng
        self.encode = encode
        self._next = rng.randrange(len(MALFORMED_KINDS))

    def corrupt(self, line: str) -> str:
        """A malformed variant of line (never valid, never identical to it)."""
        kind = MALFORMED_KINDS[self._next]
        self._next = (self._next + 1) % len(MALFORMED_KINDS)
        rng = self.rng
        if kind == "truncated_json":
            return line[: rng.randrange(len(line) // 3, 2 * len(line) // 3)]
        if kind == "not_an_object":
            return rng.choice(_NOT_OBJECTS)
        msg: dict[str, Any] = json.loads(line)
        msg["messageId"] = uuid4_text(rng.getrandbits(128))
        if kind == "missing_identity":
            msg.pop("userId", None)
            msg.pop("anonymousId", None)
        elif kind == "track_without_event":
            _as_track(msg)
            msg.pop("event", None)
        elif kind == "unknown_type":
            msg["type"] = rng.choice(_UNKNOWN_TYPES)
        elif kind == "bad_timestamp":
            msg["timestamp"] = _non_iso(rng, msg["timestamp"])
        else:
            _as_track(msg)
            props = msg.get("properties") or {}
            msg["properties"] = (
                json.dumps(props)
                if rng.random() < 0.5
                else "&".join(f"{k}={v}" for k, v in props.items() if not isinstance(v, (list, dict)))
            )
        return self.encode(msg)


def _as_track(msg: dict[str, Any]) -> None:
    if msg.get("type") != "track":
        msg["type"] = "track"
        msg["event"] = "Product Viewed"
        for key in _DROP_FOR_TRACK:
            msg.pop(key, None)
        msg.setdefault("properties", {})


def _non_iso(rng: Random, iso: str) -> str:
    """Re-render an ISO timestamp (YYYY-MM-DDTHH:MM:SS.mmmZ) in a common non-ISO form."""
    year, month, day = iso[0:4], iso[5:7], iso[8:10]
    clock = iso[11:19]
    style = rng.randrange(5)
    if style == 0:
        return f"{month}/{day}/{year} {clock}"
    if style == 1:
        return f"{day}-{month}-{year} {clock[:5]}"
    if style == 2:
        return f"{day} {_MONTHS[int(month) - 1]} {year} {clock} GMT"
    if style == 3:
        return "yesterday"
    hour = int(clock[:2])
    return f"{_MONTHS[int(month) - 1]} {int(day)}, {year} {hour % 12 or 12}:{clock[3:5]} {'AM' if hour < 12 else 'PM'}"
