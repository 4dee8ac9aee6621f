"""Secrets are environment references: resolved when needed, reported by name, never by value."""

import pytest

from activation_pipeline.config import MissingSecretError, SecretRef, load_workspace, missing_environment
from activation_pipeline.orchestration.workspace import SAMPLE_WORKSPACE


def test_resolve_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set variable resolves to its value."""
    monkeypatch.setenv("AP_TEST_TOKEN", "s3cr3t")
    assert SecretRef(env="AP_TEST_TOKEN").resolve() == "s3cr3t"


def test_missing_variable_names_the_variable_and_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing variable raises an error naming it and where it is used."""
    monkeypatch.delenv("AP_TEST_TOKEN", raising=False)
    with pytest.raises(
        MissingSecretError,
        match=r"destinations\[0\].settings.access_token: environment variable AP_TEST_TOKEN is not set",
    ):
        SecretRef(env="AP_TEST_TOKEN").resolve("destinations[0].settings.access_token")


def test_repr_hides_nothing_secret() -> None:
    """The reference's repr shows the variable name only."""
    assert repr(SecretRef(env="X")) == "SecretRef(env='X')"


def test_missing_environment_lists_each_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every unset secret of the sample is listed with its path; set ones are not."""
    workspace = load_workspace(SAMPLE_WORKSPACE)
    for name in ("META_ACCESS_TOKEN", "BRAZE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRAZE_API_KEY", "value-that-must-not-appear")
    problems = missing_environment(workspace)
    texts = [str(p) for p in problems]
    assert "destinations[0].settings.access_token: environment variable META_ACCESS_TOKEN is not set" in texts
    assert not any("BRAZE_API_KEY" in t or "value-that-must-not-appear" in t for t in texts)
