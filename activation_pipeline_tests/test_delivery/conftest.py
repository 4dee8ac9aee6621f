"""Fixtures of the delivery suites: state stores on SQLite and PostgreSQL, secrets for the sandboxes."""

import pytest

from activation_pipeline_tests.test_delivery.workload import state_location, store

__all__ = ["state_location", "store"]


@pytest.fixture(autouse=True)
def _sandbox_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAZE_TEST_KEY", "braze-sandbox-key")
    monkeypatch.setenv("ITERABLE_TEST_KEY", "iterable-sandbox-key")
    monkeypatch.setenv("HOOK_SECRET", "abc123")
