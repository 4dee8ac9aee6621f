"""Search keys of identifier values: the ledger is searchable by any identifier without storing it raw."""

from __future__ import annotations

import hashlib


def lookup_key(value: str) -> str:
    """sha256 hex of the trimmed, lower-cased identifier value."""
    # Values are already canonical (activation_pipeline.identifiers); lower-casing on top keeps the search
    # case-insensitive for ids and keeps the keys already stored valid.
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()
