"""The resources the sandbox and tests swap: where destinations are reached, secrets, the rate limiter, the
clock, and where state is kept; the workspace file and the environment are never changed."""

import os
from pathlib import Path

import pytest

from activation_pipeline.config import load_workspace
from activation_pipeline.delivery.rate_limit import SharedRateLimiter
from activation_pipeline.orchestration.resources import DeliveryResource, StateStoreResource
from activation_pipeline.sandbox.workspace import PlaceholderSecret


class FrozenClock(DeliveryResource):
    """Delivery whose clock stands still."""

    def now(self) -> float:
        return 1_000.0


def test_delivery_points_destinations_at_other_urls_with_placeholder_secrets(
    sample_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Base URLs and placeholder secrets apply in memory, per workspace; the file and environment stay."""
    monkeypatch.delenv("META_ACCESS_TOKEN", raising=False)
    text = sample_copy.read_text()
    workspace = load_workspace(sample_copy)
    delivery = DeliveryResource(
        base_urls={"acme-shop/meta_ads": "http://127.0.0.1:9/meta", "other-shop/braze": "http://elsewhere"},
        placeholder_secrets=True,
    )
    moved = delivery.workspace(workspace)
    meta = moved.destination("meta_ads").settings
    assert meta.base_url == "http://127.0.0.1:9/meta"  # type: ignore[union-attr]
    assert isinstance(meta.access_token, PlaceholderSecret)  # type: ignore[union-attr]
    assert meta.access_token.resolve() == "sandbox-meta_access_token"  # type: ignore[union-attr]
    assert moved.destination("braze").settings == workspace.destination("braze").settings.model_copy(  # type: ignore[union-attr]
        update={"api_key": PlaceholderSecret(env=workspace.destination("braze").settings.api_key.env)}  # type: ignore[union-attr]
    )
    hook = moved.destination("crm_hook").settings
    assert hook.url == workspace.destination("crm_hook").settings.url  # type: ignore[union-attr]
    assert moved.base_dir == workspace.base_dir
    assert "META_ACCESS_TOKEN" not in os.environ and sample_copy.read_text() == text
    assert DeliveryResource().workspace(workspace) is workspace


def test_rate_limiter_is_swappable_and_uses_the_resource_clock(sample_copy: Path, tmp_path: Path) -> None:
    """By default each destination gets a limiter on its rate with the resource's clock; unlimited: none."""
    workspace = load_workspace(sample_copy)
    state = StateStoreResource(directory=str(tmp_path))
    store = state.open(workspace)
    braze = workspace.destination("braze")  # 100 requests per second by default
    limiter = FrozenClock().limiter(store, braze)
    assert isinstance(limiter, SharedRateLimiter) and limiter.clock() == 1_000.0 and limiter.rate == 100
    limiter.close()
    assert DeliveryResource(rate_limited=False).limiter(store, braze) is None
    policy = DeliveryResource(max_attempts=2, base_delay=0.01).retry_policy()
    assert (policy.max_attempts, policy.base_delay) == (2, 0.01)
    state.close()


def test_state_store_directory_override_keeps_workspaces_apart(sample_copy: Path, tmp_path: Path) -> None:
    """With a directory, each workspace gets its own store there; opened once per run, closed at the end."""
    workspace = load_workspace(sample_copy)
    assert StateStoreResource().location(workspace) == workspace.state_location()
    state = StateStoreResource(directory=str(tmp_path / "sandbox"))
    assert state.location(workspace) == str(tmp_path / "sandbox" / "acme-shop.db")
    assert state.open(workspace) is state.open(workspace)
    assert (tmp_path / "sandbox" / "acme-shop.db").exists()
    state.close()
    assert not state._stores
