"""A sample destination function: forwards audience changes to a loyalty programme.

Handlers receive the Segment-spec message and the destination's `settings`; raising an exception fails
that record, raising `RetryableError` (from activation_pipeline.destinations.function) asks for a retry.
"""

from typing import Any


def on_track(event: dict[str, Any], settings: dict[str, str]) -> dict[str, Any]:
    """Turn an Audience Entered / Exited event into a loyalty-programme enrolment change."""
    properties = event.get("properties", {})
    return {
        "programme": settings.get("programme", "default"),
        "user": event.get("userId") or event.get("anonymousId"),
        "enrolled": bool(properties.get(properties.get("audience_key", ""), False)),
        "tier": properties.get("tier"),
    }


def on_identify(event: dict[str, Any], settings: dict[str, str]) -> dict[str, Any]:
    """Record profile trait changes for the programme."""
    return {"programme": settings.get("programme", "default"), "traits": event.get("traits", {})}
