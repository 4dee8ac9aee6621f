"""A value JSON cannot carry (NaN, infinity) fails its own record with the reason; the batch goes on."""

import math

from activation_pipeline.activation.model import Change, ChangeKind
from activation_pipeline.activation.payloads import plan_changes
from activation_pipeline.delivery.engine import deliver
from activation_pipeline.destinations.http import ClientOptions, RetryPolicy
from activation_pipeline.destinations.registry import build_client
from activation_pipeline.destinations.webhook.server import WebhookSandbox
from activation_pipeline.state.json_values import unsendable
from activation_pipeline.state.ledger import query_ledger
from activation_pipeline.state.store import StateStore
from activation_pipeline_tests.test_delivery.workload import AS_OF, connection, profile, webhook_destination


def test_a_nan_trait_fails_alone(store: StateStore) -> None:
    values = [120.5, math.nan, 80.0, math.inf]
    changes = [
        Change(ChangeKind.TRAIT_CHANGED, profile(f"p{i}", user_id=f"u{i}", emails=(f"u{i}@example.com",)), AS_OF,
               None, value)
        for i, value in enumerate(values)
    ]  # fmt: skip
    planned = plan_changes(changes, connection("trait:ltv"), kind="event", space="acme")
    with WebhookSandbox() as sandbox:
        client = build_client(
            webhook_destination(sandbox.hook_url, batch=True),
            ClientOptions(sleep=lambda _s: None, retry=RetryPolicy(max_attempts=2)),
        )
        report = deliver(store, client, destination_id="hook", planned=planned)
        assert {m["userId"] for m in sandbox.messages()} == {"u0", "u2"}
    assert (report.sent, report.failed) == (2, 2)
    [row] = query_ledger(store, "u1@example.com", "hook")
    assert row.outcome == "failed" and "traits.ltv is nan: JSON cannot carry NaN" in (row.reason or "")


def test_unsendable_names_the_place() -> None:
    assert unsendable({"traits": {"a": [1.0, {"b": -math.inf}]}}) == (
        "traits.a[1].b is -inf: JSON cannot carry NaN or infinite numbers"
    )
    assert unsendable({"traits": {"a": 1.5, "b": None, "c": "NaN"}}) is None
