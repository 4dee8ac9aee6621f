"""ID Sync: which identifier values of a profile go to a destination, under which names.

Semantics (seeds "ID Sync" and "Using Engage data"):
- Every message is keyed by `userId` (the profile's last-added user_id) or, without one, `anonymousId`
  (the last-added anonymous_id).
- Without ID Sync (default setup, or customized with no id_sync entries) every value of each standard
  identifier is sent (email, phone; ios.idfa / android.id only with Send Mobile IDs) and custom identifiers
  are not. All values travel in one message (`context.externalIds`), not one message per value as Segment
  does: see `payloads`.
- With ID Sync only the listed identifiers go, under their destination names: `last_added` /
  `first_added` pick the value first seen latest / earliest; `all` sends every value.
- Mobile ids go as `context.device.advertisingId` (with `context.device.type`), only with Send Mobile IDs.
"""

from __future__ import annotations

from dataclasses import dataclass

from activation_pipeline.activation.model import IdentifierValue, ProfileView
from activation_pipeline.config.models import MOBILE_IDENTIFIERS, Connection, IdStrategy

DEFAULT_IDENTIFIERS: tuple[str, ...] = ("email", "phone", "ios.idfa", "android.id")
DEVICE_TYPES = {"ios.idfa": "ios", "android.id": "android"}
ADVERTISING_ID = "context.device.advertisingId"


@dataclass(frozen=True)
class SentIdentifier:
    """One identifier value to send, under its destination name."""

    identifier: str
    name: str
    value: str

    @property
    def is_mobile(self) -> bool:
        """Whether this is a mobile advertising id (sent as context.device.advertisingId)."""
        return self.identifier in MOBILE_IDENTIFIERS


@dataclass(frozen=True)
class IdentifierSelection:
    """The identifiers of one profile for one connection."""

    user_id: str | None
    anonymous_id: str | None
    fixed: tuple[SentIdentifier, ...]
    """Single picks (last_added / first_added)."""
    fanned: tuple[SentIdentifier, ...]
    """Every value of identifiers sent whole (strategy all, or default setup), oldest first."""

    def by_name(self) -> dict[str, list[str]]:
        """Every selected value by destination name (list destinations take them all in one record)."""
        grouped: dict[str, list[str]] = {}
        for sent in (*self.fixed, *self.fanned):
            grouped.setdefault(sent.name, [])
            if sent.value not in grouped[sent.name]:
                grouped[sent.name].append(sent.value)
        return grouped


def pick(values: list[IdentifierValue], strategy: IdStrategy) -> list[IdentifierValue]:
    """Apply an ID Sync strategy to values ordered oldest first."""
    if not values:
        return []
    if strategy is IdStrategy.LAST_ADDED:
        return [values[-1]]
    if strategy is IdStrategy.FIRST_ADDED:
        return [values[0]]
    return list(values)


def default_name(identifier: str) -> str:
    """The name an identifier goes under without ID Sync."""
    return ADVERTISING_ID if identifier in MOBILE_IDENTIFIERS else identifier


def select_identifiers(profile: ProfileView, connection: Connection) -> IdentifierSelection:
    """Choose the identifier values a connection sends for a profile."""
    user_ids = profile.values_of("user_id")
    anonymous_ids = profile.values_of("anonymous_id")
    user_id = user_ids[-1].value if user_ids else None
    anonymous_id = anonymous_ids[-1].value if anonymous_ids and user_id is None else None
    fixed: list[SentIdentifier] = []
    fanned: list[SentIdentifier] = []
    mappings = connection.id_sync if connection.setup == "customized" else []
    if not mappings:
        for identifier in DEFAULT_IDENTIFIERS:
            if identifier in MOBILE_IDENTIFIERS and not connection.send_mobile_ids:
                continue
            name = default_name(identifier)
            fanned += [SentIdentifier(identifier, name, v.value) for v in profile.values_of(identifier)]
    else:
        for mapping in mappings:
            if mapping.identifier in MOBILE_IDENTIFIERS and not connection.send_mobile_ids:
                continue
            chosen = pick(profile.values_of(mapping.identifier), mapping.strategy)
            sent = [SentIdentifier(mapping.identifier, mapping.as_, v.value) for v in chosen]
            (fanned if mapping.strategy is IdStrategy.ALL else fixed).extend(sent)
    return IdentifierSelection(user_id, anonymous_id, tuple(fixed), tuple(fanned))
