"""Deltas against the acknowledged snapshot: backfill, increments, resync, traits, merges."""

from activation_pipeline.activation.ids import same_value
from activation_pipeline.activation.model import ChangeKind
from activation_pipeline.sync.delta import SubjectChange, SyncMode, audience_delta, follow_merges, trait_delta

ENTERED, EXITED, CHANGED = ChangeKind.ENTERED, ChangeKind.EXITED, ChangeKind.TRAIT_CHANGED


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
    assert [c.subject_key for c in trait_delta(values, snapshot, SyncMode.RESYNC)] == ["1", "2", "4", "3"]


def test_merged_profile_is_not_entered_again() -> None:
    """Following merges, a member that merged into another member or a new id stays held: no exit, no entry."""
    snapshot = {"old": True, "keep": True}
    moved = follow_merges(snapshot, {"old": "new"})
    assert moved == {"keep": True, "new": True}
    assert audience_delta({"keep", "new"}, moved, SyncMode.INCREMENTAL) == []


def test_same_value() -> None:
    """Numbers compare by value, containers element-wise, booleans are not numbers."""
    assert same_value(0, 0.0) and same_value({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not same_value(True, 1) and not same_value("1", 1)
