"""Payload building: a `Change` of one profile becomes Segment-spec messages (event destinations) or an
add / remove record (list destinations), following the seeds exactly.

Audience, Send Identify: `identify` with `traits: {<audience_key>: true|false}`.
Audience, Send Track: `track` `Audience Entered` / `Audience Exited` with
`properties: {audience_key: <key>, <key>: true|false}`.
Computed trait (only when the value changed): `identify` with `traits: {<trait>: value}` and/or `track`
`Trait Computed` with `properties: {trait_key: <trait>, <trait>: value}`; account-level traits go as a
`group` call (`groupId`, `traits`) instead of the identify.
Customized setup adds Trait Enrichment (into `traits` for identify/group, `properties` for track) and
ID Sync (see `id_sync`); identifiers go into `traits` (identify) or `context.traits` (track, group);
mobile ids into `context.device`. Every message has a deterministic `messageId`, a `timestamp` (the change's
as-of time) and `context.personas`.

One member and one change make at most one identify (or group) and one track per **destination record key**,
not one per identifier value (Segment's fan-out, which makes a CRM see one person enter four times). Every
selected identifier value travels in that message's `context.externalIds` (`{id, type, collection: "users",
encoding: "none"}`), and the usual field (`traits.email`, `context.device.advertisingId`, ...) holds the value
the strategy picks (the most recently added one for `all`). Only a destination that keys people by a value of
an identifier when there is no user id (Iterable by email) gets one message per such value, because each is a
separate record there (`separate_by`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from activation_pipeline.activation.id_sync import (
    DEVICE_TYPES,
    IdentifierSelection,
    SentIdentifier,
    select_identifiers,
)
from activation_pipeline.activation.ids import (
    change_id,
    digest,
    iso_timestamp,
    lookup_key,
    message_id,
    same_value,
)
from activation_pipeline.activation.model import Change, ChangeKind, PlannedChange, ProfileView
from activation_pipeline.config.journeys import step_trait_key
from activation_pipeline.config.models import Connection
from activation_pipeline.destinations.base import Operation, OutboundRecord

DestinationKind = Literal["event", "list"]
AUDIENCE_EVENTS = {ChangeKind.ENTERED: "Audience Entered", ChangeKind.EXITED: "Audience Exited"}


@dataclass(frozen=True)
class Computation:
    """The audience or computed trait a connection activates, as `context.personas` describes it."""

    computation_class: Literal["audience", "computed_trait", "journey_step"]
    key: str
    id: str
    space: str
    journey: tuple[str, str] | None = None
    """A journey send step's (journey key, step key)."""

    def context(self) -> dict[str, str]:
        """The `context.personas` object."""
        context = {
            "computation_class": self.computation_class,
            "computation_key": self.key,
            "computation_id": self.id,
            "space_id": self.space,
            "namespace": self.space,
        }
        if self.journey is not None:
            context["journey_key"], context["journey_step_key"] = self.journey
        return context


def computation_for(connection: Connection, space: str, computation_id: str | None = None) -> Computation:
    """The computation of a connection; its id defaults to a stable hash of space and key."""
    if connection.source_kind == "journey":
        journey_key, step_key = connection.source_key.split(".", 1)
        key = step_trait_key(journey_key, step_key)
        return Computation(
            "journey_step",
            key,
            computation_id or f"jst_{digest(space, 'journey_step', key, length=24)}",
            space,
            (journey_key, step_key),
        )
    if connection.source_kind == "audience":
        cls: Literal["audience", "computed_trait"] = "audience"
        prefix = "aud"
    else:
        cls, prefix = "computed_trait", "ctr"
    key = connection.source_key
    return Computation(cls, key, computation_id or f"{prefix}_{digest(space, cls, key, length=24)}", space)


def trait_value(traits: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """Look a trait up by flat key, else by dotted path into nested objects; (found, value)."""
    if path in traits:
        return True, traits[path]
    current: Any = traits
    for part in path.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def enrichment(profile: ProfileView, connection: Connection) -> dict[str, Any]:
    """Trait Enrichment: mapped profile traits under their destination names (customized setup only)."""
    if connection.setup != "customized":
        return {}
    found: dict[str, Any] = {}
    for mapping in connection.trait_enrichment:
        present, value = trait_value(profile.traits, mapping.trait)
        if present:
            found[mapping.as_] = value
    return found


@dataclass(frozen=True)
class _Recipient:
    """The identifiers of one message: all selected values, and the record it is for (when separated)."""

    identifiers: tuple[SentIdentifier, ...]
    record_value: SentIdentifier | None = None

    @property
    def key(self) -> str:
        """Part of the messageId: the separating value only, so new identifiers never change the id."""
        if self.record_value is None:
            return ""
        return digest(self.record_value.name, self.record_value.value, length=16)


def _recipients(selection: IdentifierSelection, separate_by: str | None) -> list[_Recipient]:
    """One recipient per destination record: the member, or each value of `separate_by` without a user id."""
    everything = (*selection.fixed, *selection.fanned)
    own = (
        [s for s in everything if s.name == separate_by] if separate_by and selection.user_id is None else []
    )
    if not own:
        return [_Recipient(everything)]
    others = tuple(s for s in everything if s.name != separate_by)
    return [_Recipient((*others, value), value) for value in own]


def _external_ids(identifiers: tuple[SentIdentifier, ...]) -> list[dict[str, str]]:
    return [
        {
            "id": s.value,
            "type": s.identifier if s.is_mobile else s.name,
            "collection": "users",
            "encoding": "none",
        }
        for s in identifiers
    ]


def _envelope(
    message_type: str,
    change_key: str,
    recipient: _Recipient,
    selection: IdentifierSelection,
    change: Change,
    computation: Computation,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": message_type,
        "messageId": message_id(change_key, message_type, recipient.key),
        "timestamp": iso_timestamp(change.as_of),
    }
    if selection.user_id is not None:
        message["userId"] = selection.user_id
    else:
        message["anonymousId"] = selection.anonymous_id or change.profile.profile_id
    context: dict[str, Any] = {"personas": computation.context()}
    mobile = [s for s in recipient.identifiers if s.is_mobile]
    if mobile:  # the most recently added advertising id; every one is in externalIds
        context["device"] = {"advertisingId": mobile[-1].value, "type": DEVICE_TYPES[mobile[-1].identifier]}
    if recipient.identifiers:
        context["externalIds"] = _external_ids(recipient.identifiers)
    message["context"] = context
    return message


def _identifier_fields(recipient: _Recipient) -> dict[str, str]:
    """One value per destination name: the last added (values come oldest first), the record's own last."""
    fields = {s.name: s.value for s in recipient.identifiers if not s.is_mobile}
    if recipient.record_value is not None:
        fields[recipient.record_value.name] = recipient.record_value.value
    return fields


def _messages_for(
    change: Change,
    change_key: str,
    connection: Connection,
    computation: Computation,
    selection: IdentifierSelection,
    recipient: _Recipient,
    enriched: Mapping[str, Any],
) -> list[tuple[Operation, dict[str, Any]]]:
    key = computation.key
    ids = _identifier_fields(recipient)
    journey = computation.journey
    value = True if journey is not None else change.snapshot_value
    account = change.level == "account" and change.profile.account_id is not None
    out: list[tuple[Operation, dict[str, Any]]] = []
    if connection.send_identify:
        if account:
            message = _envelope("group", change_key, recipient, selection, change, computation)
            message["groupId"] = change.profile.account_id
            message["traits"] = {key: value}
            if ids:
                message["context"]["traits"] = ids
            out.append((Operation.GROUP, message))
        else:
            message = _envelope("identify", change_key, recipient, selection, change, computation)
            message["traits"] = {**ids, **enriched, key: value}
            out.append((Operation.IDENTIFY, message))
    if connection.send_track:
        message = _envelope("track", change_key, recipient, selection, change, computation)
        if journey is not None:
            message["event"] = AUDIENCE_EVENTS[change.kind]
            message["properties"] = {
                "audience_key": key,
                "journey_key": journey[0],
                "journey_step_key": journey[1],
                **enriched,
                key: value,
            }
        elif computation.computation_class == "audience":
            message["event"] = AUDIENCE_EVENTS[change.kind]
            message["properties"] = {"audience_key": key, **enriched, key: value}
        else:
            message["event"] = "Trait Computed"
            message["properties"] = {"trait_key": key, **enriched, key: value}
        if ids:
            message["context"]["traits"] = ids
        if account:
            message["context"]["groupId"] = change.profile.account_id
        out.append((Operation.TRACK, message))
    return out


def is_noop(change: Change) -> bool:
    """A computed trait whose value did not change sends nothing."""
    return change.kind is ChangeKind.TRAIT_CHANGED and same_value(change.old_value, change.new_value)


def _check_kind(change: Change, connection: Connection) -> None:
    audience_kinds = {ChangeKind.ENTERED, ChangeKind.EXITED}
    if (connection.source_kind in ("audience", "journey")) != (change.kind in audience_kinds):
        raise ValueError(
            f"a {change.kind.value} change does not fit connection {connection.connection_id} "
            f"(source {connection.source_kind})"
        )


def _change_key(change: Change, connection: Connection) -> str:
    return change_id(
        connection.connection_id,
        change.subject_key,
        change.kind.value,
        change.snapshot_value,
        change.as_of,
        change.generation,
    )


def profile_lookup_keys(profile: ProfileView) -> tuple[str, ...]:
    """Search keys of every identifier of a profile (hashes, not values)."""
    return tuple(sorted({lookup_key(i.value) for i in profile.identifiers}))


def plan_event_change(
    change: Change,
    connection: Connection,
    *,
    space: str,
    computation_id: str | None = None,
    separate_by: str | None = None,
) -> PlannedChange | None:
    """The Segment-spec messages of one change for an event destination (None when nothing to send).

    One identify and one track per destination record: the member, or (`separate_by`, without a user id)
    each value of that identifier."""
    _check_kind(change, connection)
    if is_noop(change):
        return None
    computation = computation_for(connection, space, computation_id)
    selection = select_identifiers(change.profile, connection)
    enriched = enrichment(change.profile, connection)
    change_key = _change_key(change, connection)
    records: list[OutboundRecord] = []
    for recipient in _recipients(selection, separate_by):
        for operation, message in _messages_for(
            change, change_key, connection, computation, selection, recipient, enriched
        ):
            records.append(
                OutboundRecord(message["messageId"], change.profile.profile_id, operation, message)
            )
    if not records:
        return None
    return PlannedChange(
        change_key,
        connection.connection_id,
        change.subject_key,
        change.profile.profile_id,
        change.snapshot_value,
        tuple(records),
        profile_lookup_keys(change.profile),
    )


def plan_list_change(
    change: Change,
    connection: Connection,
    *,
    space: str,
    computation_id: str | None = None,
    separate_by: str | None = None,
) -> PlannedChange | None:
    """One add / remove record for a list destination: identifiers by name (all selected values), traits."""
    _check_kind(change, connection)
    if change.kind is ChangeKind.TRAIT_CHANGED:
        return None
    del space, computation_id, separate_by  # a list record carries every identifier and no personas context
    selection = select_identifiers(change.profile, connection)
    identifiers = selection.by_name()
    change_key = _change_key(change, connection)
    operation = Operation.ADD if change.kind is ChangeKind.ENTERED else Operation.REMOVE
    payload = {"identifiers": identifiers, "traits": enrichment(change.profile, connection)}
    record = OutboundRecord(
        message_id(change_key, operation.value), change.profile.profile_id, operation, payload
    )
    return PlannedChange(
        change_key,
        connection.connection_id,
        change.subject_key,
        change.profile.profile_id,
        change.snapshot_value,
        (record,),
        profile_lookup_keys(change.profile),
    )


def plan_changes(
    changes: Iterable[Change],
    connection: Connection,
    *,
    kind: DestinationKind,
    space: str,
    computation_id: str | None = None,
    separate_by: str | None = None,
) -> list[PlannedChange]:
    """Plan every change of one connection for an event or list destination, dropping no-ops."""
    plan = plan_event_change if kind == "event" else plan_list_change
    planned = (
        plan(c, connection, space=space, computation_id=computation_id, separate_by=separate_by)
        for c in changes
    )
    return [p for p in planned if p is not None]
