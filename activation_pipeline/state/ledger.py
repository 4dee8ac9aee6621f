"""The delivery ledger: for a profile (by any identifier) and a destination, what was sent, when, in which
batch, and what the destination answered. The ledger holds what was sent (personal data included) because
answering that question needs it; identifiers are searchable through hashes only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from activation_pipeline.activation.ids import lookup_key
from activation_pipeline.identifiers import EMAIL, PHONE, lookup_candidates
from activation_pipeline.state.schema import delivery_ledger, ledger_keys
from activation_pipeline.state.store import StateStore, open_state


@dataclass(frozen=True)
class LedgerRow:
    """One delivery attempt of one record."""

    sent_at: datetime
    destination_id: str
    connection_id: str
    profile_id: str
    record_id: str
    operation: str
    batch_id: str
    sync_id: str
    attempt: int
    outcome: str
    reason: str | None
    sent: Any
    response: Any


DEFAULT_REGION = "US"
"""Region of national phone forms in a lookup when no workspace says otherwise."""


@dataclass(frozen=True)
class LedgerLookup:
    """What a ledger search found: the profiles the identifier belongs to (none: unknown) and their rows."""

    profiles: tuple[str, ...]
    rows: list[LedgerRow]

    @property
    def known(self) -> bool:
        """Whether any record was ever staged for a profile with this identifier (or with this profile id)."""
        return bool(self.profiles)


def known_profiles(
    connection: sa.Connection, identifier_value: str, destination_id: str | None, region: str = DEFAULT_REGION
) -> list[str]:
    """Profile ids with a record staged under any canonical form of `identifier_value`, or of that very id."""
    hashes = sorted({lookup_key(value) for _, value in lookup_candidates(identifier_value, region)})
    if not hashes:
        return []
    query = sa.select(ledger_keys.c.profile_id).where(
        sa.or_(ledger_keys.c.key_hash.in_(hashes), ledger_keys.c.profile_id == identifier_value.strip())
    )
    if destination_id is not None:
        query = query.where(ledger_keys.c.destination_id == destination_id)
    return sorted({row[0] for row in connection.execute(query.distinct())})


def lookup_ledger(
    store: StateStore,
    identifier_value: str,
    destination_id: str | None = None,
    limit: int = 500,
    region: str = DEFAULT_REGION,
) -> LedgerLookup:
    """The profiles an identifier written any usual way belongs to, and their ledger rows, oldest first."""
    with store.read() as connection:
        known = known_profiles(connection, identifier_value, destination_id, region)
        profiles = sorted({*known, identifier_value.strip()})
        query = sa.select(delivery_ledger).where(delivery_ledger.c.profile_id.in_(profiles))
        if destination_id is not None:
            query = query.where(delivery_ledger.c.destination_id == destination_id)
        rows = connection.execute(
            query.order_by(delivery_ledger.c.sent_at, delivery_ledger.c.id).limit(limit)
        ).all()
    found = [_ledger_row(row) for row in rows]
    # Ledger rows under the value taken as a profile id make it known even when no search key names it.
    return LedgerLookup(tuple(sorted({*known, *(r.profile_id for r in found)})), found)


def query_ledger(
    store: StateStore,
    identifier_value: str,
    destination_id: str | None = None,
    limit: int = 500,
    region: str = DEFAULT_REGION,
) -> list[LedgerRow]:
    """Ledger rows of the profile(s) an identifier value belongs to, oldest first."""
    return lookup_ledger(store, identifier_value, destination_id, limit, region).rows


def _ledger_row(row: Any) -> LedgerRow:
    return LedgerRow(
        sent_at=_aware(row.sent_at),
        destination_id=row.destination_id,
        connection_id=row.connection_id,
        profile_id=row.profile_id,
        record_id=row.record_id,
        operation=row.operation,
        batch_id=row.batch_id,
        sync_id=row.sync_id,
        attempt=row.attempt,
        outcome=row.outcome,
        reason=row.reason,
        sent=row.sent,
        response=row.response,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def find_in_ledger(
    state_url: str | Path,
    destination_id: str | None,
    identifier_value: str,
    limit: int = 500,
    region: str = DEFAULT_REGION,
) -> LedgerLookup:
    """Open the state store at `state_url` and search the ledger for one identifier (for the CLI)."""
    store = open_state(state_url)
    try:
        return lookup_ledger(store, identifier_value, destination_id, limit, region)
    finally:
        store.dispose()


def show_ledger(
    state_url: str | Path,
    destination_id: str | None,
    identifier_value: str,
    limit: int = 500,
    region: str = DEFAULT_REGION,
) -> list[LedgerRow]:
    """Open the state store at `state_url` and return the ledger of one profile."""
    return find_in_ledger(state_url, destination_id, identifier_value, limit, region).rows


def format_ledger(rows: list[LedgerRow], *, show_payloads: bool = True) -> str:
    """Human-readable ledger: one block per delivery attempt."""
    if not rows:
        return "no deliveries recorded for this identifier"
    lines: list[str] = []
    for row in rows:
        when = row.sent_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        head = (
            f"{when}  {row.destination_id}  {row.operation:<8} {row.outcome:<12} "
            f"attempt {row.attempt}  batch {row.batch_id[:12]}  sync {row.sync_id}"
        )
        lines.append(head)
        lines.append(f"    connection {row.connection_id}  profile {row.profile_id}  record {row.record_id}")
        if row.reason:
            lines.append(f"    reason: {row.reason}")
        if show_payloads:
            lines.append(f"    sent: {json.dumps(row.sent, sort_keys=True)}")
            if row.response is not None:
                lines.append(f"    answer: {json.dumps(row.response, sort_keys=True)}")
    return "\n".join(lines)


def format_lookup(
    lookup: LedgerLookup,
    identifier_value: str,
    destination_id: str | None,
    *,
    region: str = DEFAULT_REGION,
    show_payloads: bool = True,
) -> str:
    """The ledger of a search, or why it is empty: an unknown identifier, or a known one with nothing sent."""
    if lookup.rows:
        return format_ledger(lookup.rows, show_payloads=show_payloads)
    where = f" for destination {destination_id}" if destination_id else ""
    if lookup.known:
        return (
            f"no deliveries recorded yet{where} for profile {', '.join(lookup.profiles)}: records were staged "
            "for it but none was sent (they wait in the outbox until the next sync)"
        )
    kinds = {kind for kind, _ in lookup_candidates(identifier_value, region)}
    tried = [n for k, n in ((EMAIL, "an email"), (PHONE, f"a phone number (region {region})")) if k in kinds]
    tried.append("an id or profile id")
    return f"unknown identifier{where}: nothing was ever staged for it as {' or as '.join(tried)}"
