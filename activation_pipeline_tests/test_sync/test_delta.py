"""Deltas against the acknowledged snapshot: backfill, increments, resync, traits, merges."""

from collections.abc import Mapping, Set
from typing import Any

from activation_pipeline.activation.ids import same_value
from activation_pipeline.activation.model import ChangeKind
from activation_pipeline.state.snapshots import baseline, merge_moves, rekey_merged, snapshot_rows
from activation_pipeline.state.store import StateStore
from activation_pipeline.sync import delta
from activation_pipeline.sync.delta import SubjectChange, SyncMode

ENTERED, EXITED, CHANGED = ChangeKind.ENTERED, ChangeKind.EXITED, ChangeKind.TRAIT_CHANGED


def audience_delta(members: Set[str], snapshot: Mapping[str, Any], mode: SyncMode) -> list[SubjectChange]:
    """The delta of in-memory sides, streamed sorted as the sync streams them."""
    return list(delta.audience_delta(lambda: sorted(members), lambda: sorted(snapshot.items()), mode))


def trait_delta(
    values: Mapping[str, Any], snapshot: Mapping[str, Any], mode: SyncMode
) -> list[SubjectChange]:
    """The trait delta of in-memory sides, streamed sorted."""
    return list(delta.trait_delta(lambda: sorted(values.items()), lambda: sorted(snapshot.items()), mode))


def test_first_sync_is_a_backfill() -> None:
    """With an empty snapshot every member enters."""
    assert audience_delta({"1", "2"}, {}, SyncMode.INCREMENTAL) == [
        SubjectChange("1", ENTERED),
        SubjectChange("2", ENTERED),
    ]


def test_increment_sends_only_who_entered_and_exited() -> None:
    """Members already held are not sent again; held non-members exit; exited ones re-enter."""
    snapshot = {"1": True, "2": True, "3": False}
    assert audience_delta({"1", "3", "4"}, snapshot, SyncMode.INCREMENTAL) == [
        SubjectChange("3", ENTERED),
        SubjectChange("4", ENTERED),
        SubjectChange("2", EXITED),
    ]


def test_resync_sends_every_member_and_removes_former_ones() -> None:
    """A resync re-sends members the destination holds, and still removes those no longer members."""
    snapshot = {"1": True, "2": True}
    assert audience_delta({"1"}, snapshot, SyncMode.RESYNC) == [
        SubjectChange("1", ENTERED),
        SubjectChange("2", EXITED),
    ]


def test_trait_sent_only_when_changed() -> None:
    """Unchanged values (0 and 0.0 included) send nothing; changed and new ones do; a lost value goes to null."""
    snapshot = {"1": 10, "2": 0, "3": "gold"}
    values = {"1": 10.0, "2": 0.0, "4": 5}
    assert trait_delta(values, {**snapshot, "3": "gold"}, SyncMode.INCREMENTAL) == [
        SubjectChange("4", CHANGED, None, 5),
        SubjectChange("3", CHANGED, "gold", None),
    ]
    resync = trait_delta(values, snapshot, SyncMode.RESYNC)
    assert [c.subject_key for c in resync] == ["1", "2", "4", "3"]
    assert resync[0] == SubjectChange("1", CHANGED, None, 10.0)  # sent again, even though unchanged


def test_merged_profile_is_not_entered_again(store: StateStore) -> None:
    """Following merges, a member that merged into another member or a new id stays held: no exit, no entry.

    A dry run follows them in memory, a sync writes them; both read the same snapshot afterwards."""
    baseline(store, "c", "d", [("old", True), ("keep", True), ("gone", True), ("twin", True)], "s1")
    aliases = {"old": "new", "gone": "keep", "absent": "x"}
    moves = merge_moves(store, "c", aliases)
    assert moves == {"old": "new", "gone": None}
    in_memory = list(snapshot_rows(store, "c", moves, chunk=2))
    assert in_memory == [("keep", True), ("new", True), ("twin", True)]
    assert rekey_merged(store, "c", aliases) == 2
    assert list(snapshot_rows(store, "c", chunk=2)) == in_memory
    members = {"keep", "new", "twin"}
    assert audience_delta(members, dict(in_memory), SyncMode.INCREMENTAL) == []


def test_same_value() -> None:
    """Numbers compare by value, containers element-wise, booleans are not numbers."""
    assert same_value(0, 0.0) and same_value({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not same_value(True, 1) and not same_value("1", 1)
