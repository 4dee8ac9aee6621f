"""What a connection must send: the difference between what should be at the destination and its snapshot.

Both sides arrive as streams sorted by subject key (binary order), so a delta of any size is computed in a
merge pass that holds one row of each side at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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
    refresh: bool = False
    """A held member sent again because its last acknowledged upload is old (membership upkeep)."""


Rows = Iterable[tuple[str, Any]]
"""(subject key, value) pairs sorted by subject key, each subject once."""


def _join(left: Rows, right: Rows) -> Iterator[tuple[str, tuple[bool, Any], tuple[bool, Any]]]:
    """Full outer merge join of two sorted streams: (key, (in left, value), (in right, value))."""
    missing = (False, None)
    lefts, rights = iter(left), iter(right)
    a, b = next(lefts, None), next(rights, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], (True, a[1]), missing
            a = next(lefts, None)
        elif a is None or b[0] < a[0]:
            yield b[0], missing, (True, b[1])
            b = next(rights, None)
        else:
            yield a[0], (True, a[1]), (True, b[1])
            a, b = next(lefts, None), next(rights, None)


def audience_delta(
    members: Callable[[], Iterable[str]],
    snapshot: Callable[[], Rows],
    mode: SyncMode,
    due: Callable[[], Iterable[str]] | None = None,
) -> Iterator[SubjectChange]:
    """Entered: members the destination does not hold (all members on a resync), and held members `due` for
    a refresh (sent again, `refresh=True`), in key order; then exited: held non-members. `members`,
    `snapshot` and `due` open a new sorted stream each time they are called."""
    refresh = iter(due()) if due is not None and mode is SyncMode.INCREMENTAL else iter(())
    next_due = next(refresh, None)
    for subject, (member, _), (_, held) in _join(((m, True) for m in members()), snapshot()):
        if member and (mode is SyncMode.RESYNC or held is not True):
            yield SubjectChange(subject, ChangeKind.ENTERED)
            continue
        while next_due is not None and next_due < subject:
            next_due = next(refresh, None)
        if member and next_due == subject:
            yield SubjectChange(subject, ChangeKind.ENTERED, refresh=True)
    for subject, (member, _), (_, held) in _join(((m, True) for m in members()), snapshot()):
        if held is True and not member:
            yield SubjectChange(subject, ChangeKind.EXITED)


def trait_delta(
    values: Callable[[], Rows], snapshot: Callable[[], Rows], mode: SyncMode
) -> Iterator[SubjectChange]:
    """Subjects whose trait value differs from the one last acknowledged (all of them on a resync), then
    subjects whose trait no longer has a value (one last change to null).

    On a resync the old value is not given: the destination's copy is what is being replaced."""
    for subject, (has_value, value), (held, old) in _join(values(), snapshot()):
        if not has_value:
            continue
        if mode is SyncMode.RESYNC:
            yield SubjectChange(subject, ChangeKind.TRAIT_CHANGED, None, value)
        elif not held or not same_value(old, value):
            yield SubjectChange(subject, ChangeKind.TRAIT_CHANGED, old if held else None, value)
    for subject, (has_value, _), (_, old) in _join(values(), snapshot()):
        if not has_value and old is not None:
            yield SubjectChange(subject, ChangeKind.TRAIT_CHANGED, old, None)


def journey_delta(
    members: Callable[[], Rows], snapshot: Callable[[], Rows], mode: SyncMode
) -> Iterator[SubjectChange]:
    """People who reached a journey's send step with an entry the destination was not sent (every one on a
    resync), in key order. Nobody leaves a send step, so there are no exits."""
    for subject, (reached, entry), (_, held) in _join(members(), snapshot()):
        if reached and (mode is SyncMode.RESYNC or held != entry):
            yield SubjectChange(subject, ChangeKind.ENTERED, held, entry)
