"""Time windows written as `30d`, `12h`, `2w` or `90m`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_WINDOW = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_WINDOW = timedelta(days=3650)


def parse_window(text: object) -> timedelta:
    """Parse `30d`-style text into a timedelta, raising ValueError with a sentence a user understands."""
    if isinstance(text, timedelta):
        return text
    match = _WINDOW.match(str(text)) if isinstance(text, str | int) else None
    if match is None:
        raise ValueError(
            f"{text!r} is not a time window; write a positive number and a unit: m (minutes), h (hours), "
            "d (days) or w (weeks), e.g. 30d"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"{text!r}: a time window must be longer than zero")
    if amount * _UNIT_SECONDS[unit] > MAX_WINDOW.total_seconds():  # before timedelta, which overflows
        raise ValueError(f"{text!r}: a time window may be at most 3650d (ten years)")
    return timedelta(seconds=amount * _UNIT_SECONDS[unit])


def format_window(window: timedelta) -> str:
    """Format a timedelta back into the shortest `30d`-style text."""
    seconds = int(window.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    raise ValueError(f"{window} is not a whole number of minutes")


Window = Annotated[timedelta, BeforeValidator(parse_window), PlainSerializer(format_window, return_type=str)]
