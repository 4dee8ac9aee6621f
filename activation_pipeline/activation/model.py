"""Plain input and output types of payload building, independent of the compute layer's tables.

The compute layer adapts its outputs to these: a `ProfileView` (identifiers with when each was first seen,
traits, account) and a `Change` (audience entered / exited, or a computed trait's value changed) as of a time.
Payload building turns a change into a `PlannedChange`: the records to send and what the connection's sync
snapshot holds once they are all acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from activation_pipeline.destinations.base import OutboundRecord


@dataclass(frozen=True)
class IdentifierValue:
    """One identifier value on a profile and when it was first (and last) seen there."""

    type: str
    value: str
    first_seen: datetime
    last_seen: datetime | None = None


@dataclass(frozen=True)
class ProfileView:
    """What payload building needs of a profile: its identifiers, traits and account."""

    profile_id: str
    identifiers: tuple[IdentifierValue, ...] = ()
    traits: Mapping[str, Any] = field(default_factory=dict)
    account_id: str | None = None

    def values_of(self, identifier: str) -> list[IdentifierValue]:
        """The values of one identifier type, oldest first (ties broken by value, for determinism)."""
        found = [i for i in self.identifiers if i.type == identifier]
        return sorted(found, key=lambda i: (i.first_seen, i.value))


class ChangeKind(StrEnum):
    """What happened to a profile in a connection's audience or computed trait."""

    ENTERED = "entered"
    EXITED = "exited"
    TRAIT_CHANGED = "trait_changed"


@dataclass(frozen=True)
class Change:
    """A membership change or a computed trait's new value for one profile, detected as of a time.

    For account-level computed traits set `level="account"`; the profile's `account_id` is the group and
    the snapshot is kept per account.
    """

    kind: ChangeKind
    profile: ProfileView
    as_of: datetime
    old_value: Any = None
    new_value: Any = None
    level: Literal["user", "account"] = "user"
    generation: str = ""
    """A resync's id: its changes (and messageIds) are new even where an earlier sync made the same ones."""

    @property
    def subject_key(self) -> str:
        """The key of the connection's sync snapshot this change updates."""
        if self.level == "account" and self.profile.account_id:
            return f"account:{self.profile.account_id}"
        return self.profile.profile_id

    @property
    def snapshot_value(self) -> Any:
        """What the snapshot holds once the change is acknowledged: membership, or the trait's value."""
        if self.kind is ChangeKind.ENTERED:
            # A journey send step holds the entry that reached it, so a later entry is sent again.
            return True if self.new_value is None else self.new_value
        if self.kind is ChangeKind.EXITED:
            return False
        return self.new_value


@dataclass(frozen=True)
class PlannedChange:
    """A change turned into records for one connection's destination."""

    change_id: str
    connection_id: str
    subject_key: str
    profile_id: str
    snapshot_value: Any
    records: tuple[OutboundRecord, ...]
    lookup_keys: tuple[str, ...] = ()
    """Hashes of the profile's identifiers, so the ledger can be searched by any of them."""
    resend: bool = False
    """Sent even though the snapshot already holds it (a list member's membership refresh)."""
