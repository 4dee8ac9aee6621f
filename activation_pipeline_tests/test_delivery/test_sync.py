"""`sync_destination`: several connections of one destination rate-limited and delivered."""

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.config.models import RateLimit
from activation_pipeline.delivery.sync import DEFAULT_SENDERS, rate_limit_for, senders_for, sync_destination
from activation_pipeline.destinations.iterable.server import IterableSandbox
from activation_pipeline.state.snapshots import read_snapshot
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import (
    AS_OF,
    braze_destination,
    connection,
    function_destination,
    iterable_destination,
    profile,
    webhook_destination,
)


def test_senders_per_destination_kind() -> None:
    """Several senders for one request per record; one for batch APIs and for a function's single worker."""
    assert senders_for(webhook_destination("http://127.0.0.1:1/hook")) == DEFAULT_SENDERS
    assert senders_for(iterable_destination("http://127.0.0.1:1", bulk=False)) == DEFAULT_SENDERS
    assert senders_for(webhook_destination("http://127.0.0.1:1/hook", batch=True)) == 1
    assert senders_for(iterable_destination("http://127.0.0.1:1", bulk=True)) == 1
    assert senders_for(braze_destination("http://127.0.0.1:1")) == 1
    assert senders_for(function_destination("handler.py")) == 1
    limited = webhook_destination("http://127.0.0.1:1/hook").model_copy(
        update={"rate_limit": RateLimit(requests_per_second=50, max_concurrent=3)}
    )
    assert senders_for(limited) == 3


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
