"""Identify messages as the payload builder makes them, for the contact destinations' client tests."""

from typing import Any

from activation_pipeline.destinations.base import BatchResult, Operation, OutboundRecord, Outcome


class Sleeps(list[float]):
    """An injected `sleep` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def identify(
    i: int,
    *,
    key: str = "lapsed_customers",
    member: Any = True,
    audience: bool = True,
    email: str | None = None,
    user_id: str | None = None,
    **traits: Any,
) -> OutboundRecord:
    """Record `r<i>`: an identify of `user<i>@example.com` with the computation's value and `traits`."""
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": f"r{i}",
        "timestamp": "2026-11-01T00:00:00.000Z",
        "traits": {"email": email if email is not None else f"user{i}@example.com", **traits, key: member},
        "context": {
            "personas": {
                "computation_class": "audience" if audience else "computed_trait",
                "computation_key": key,
                "computation_id": "aud_1",
                "space_id": "spa",
                "namespace": "spa",
            }
        },
    }
    if user_id is not None:
        message["userId"] = user_id
    else:
        message["anonymousId"] = f"anon-{i}"
    return OutboundRecord(f"r{i}", f"p{i}", Operation.IDENTIFY, message)


def track(i: int) -> OutboundRecord:
    """A track record (the contact destinations refuse it)."""
    message = {"type": "track", "event": "Audience Entered", "messageId": f"t{i}", "properties": {}}
    return OutboundRecord(f"t{i}", f"p{i}", Operation.TRACK, message)


def outcomes(result: BatchResult) -> dict[str, Outcome]:
    """Outcome per record id."""
    return {r.record_id: r.outcome for r in result.results}


def reasons(result: BatchResult) -> dict[str, str]:
    """Reason per record id."""
    return {r.record_id: r.reason for r in result.results}
