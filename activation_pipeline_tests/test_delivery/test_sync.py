"""`sync_destination`: several connections of one destination rate-limited and delivered."""

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.delivery.sync import rate_limit_for, sync_destination
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.state.snapshots import read_snapshot
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import AS_OF, connection, iterable_destination, profile


def test_sync_destination_delivers_every_connection(store: StateStore) -> None:
    with IterableSandbox() as sandbox:
        destination = iterable_destination(sandbox.url)
        assert rate_limit_for(destination) == 500  # the catalogue default (seeds' table)
        audience = connection("audience:vip", "iterable", send_track=True)
        trait = connection("trait:ltv", "iterable")
        changes = [
            (
                audience,
                [
                    Change(ChangeKind.ENTERED, profile("p1"), AS_OF),
                    Change(ChangeKind.EXITED, profile("p2", user_id="u2"), AS_OF),
                ],
            ),
            (
                trait,
                [
                    Change(ChangeKind.TRAIT_CHANGED, profile("p1"), AS_OF, 10, 12),
                    Change(ChangeKind.TRAIT_CHANGED, profile("p2", user_id="u2"), AS_OF, 5, 5),
                ],
            ),
        ]
        planned = [p for c, cs in changes for p in plan_changes(cs, c, kind="event", space="acme")]
        report = sync_destination(store, destination, planned, [audience, trait])
    assert (report.sent, report.failed) == (5, 0)
    assert sandbox.users["userId:u1"] == {"vip": True, "ltv": 12}
    assert [e["eventName"] for e in sandbox.events] == ["Audience Entered", "Audience Exited"]
    assert read_snapshot(store, audience.connection_id) == {"p1": True, "p2": False}
    assert read_snapshot(store, trait.connection_id) == {"p1": 12}
