"""What a connection must send: the difference between what should be at the destination and its snapshot."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from activation_pipeline.activation.ids import same_value
from activation_pipeline.activation.model import ChangeKind


class SyncMode(StrEnum):
    """How a sync chooses what to send."""

    INCREMENTAL = "incremental"
    """Only what differs from the last acknowledged snapshot (the first sync is therefore a backfill)."""
    RESYNC = "resync"
    """Every current member (or value) again with today's settings, and removals of former members."""


@dataclass(frozen=True)
class SubjectChange:
    """One subject (a profile, or `account:<id>`) whose state at the destination must change."""

    subject_key: str
    kind: ChangeKind
    old_value: Any = None
    new_value: Any = None


def audience_delta(members: Set[str], snapshot: Mapping[str, Any], mode: SyncMode) -> list[SubjectChange]:
    """Entered: members the destination does not hold (all members on a resync); exited: held non-members."""
    entered = sorted(m for m in members if mode is SyncMode.RESYNC or snapshot.get(m) is not True)
    exited = sorted(s for s, held in snapshot.items() if held is True and s not in members)
    return [SubjectChange(s, ChangeKind.ENTERED) for s in entered] + [
        SubjectChange(s, ChangeKind.EXITED) for s in exited
    ]


def trait_delta(
    values: Mapping[str, Any], snapshot: Mapping[str, Any], mode: SyncMode
) -> list[SubjectChange]:
    """Subjects whose trait value differs from the one last acknowledged (all of them on a resync).

    A subject whose trait no longer has a value gets one last change to null."""
    changes = [
        SubjectChange(s, ChangeKind.TRAIT_CHANGED, snapshot.get(s), v)
        for s, v in sorted(values.items())
        if mode is SyncMode.RESYNC or s not in snapshot or not same_value(snapshot[s], v)
    ]
    changes += [
        SubjectChange(s, ChangeKind.TRAIT_CHANGED, held, None)
        for s, held in sorted(snapshot.items())
        if s not in values and held is not None
    ]
    return changes


def follow_merges(snapshot: Mapping[str, Any], aliases: Mapping[str, str]) -> dict[str, Any]:
    """The snapshot keyed by current profile ids (in memory; `snapshots.rekey_merged` does it in the store)."""
    moved: dict[str, Any] = {}
    for subject, value in snapshot.items():
        if subject not in aliases:
            moved[subject] = value
    for subject, value in snapshot.items():
        current = aliases.get(subject)
        if current is not None:
            moved.setdefault(current, value)
    return moved
