"""Values JSON cannot carry: NaN and infinite numbers. Platforms refuse a whole request for one, PostgreSQL's
JSON type refuses to store one; such a record fails alone, before it is staged, with the place named."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def unsendable(payload: Any, path: str = "") -> str | None:
    """Why JSON cannot carry a payload (a NaN or infinite number, and where), or None."""
    stack: list[tuple[str, Any]] = [(path, payload)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where or 'the payload'} is {value}: JSON cannot carry NaN or infinite numbers"
        if isinstance(value, Mapping):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return None


def storable(value: Any) -> Any:
    """`value` with NaN and infinite numbers written as text ("nan", "inf"), so any store can keep it."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {k: storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value
