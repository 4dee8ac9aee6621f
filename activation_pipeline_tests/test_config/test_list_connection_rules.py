"""Issue #11: list connections' consent and membership-upkeep options are validated with path and sentence."""

from __future__ import annotations

from typing import Any

from activation_pipeline.destinations.registry import CATALOGUE

from .conftest import base, problems_of


def _google(config: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in config["connections"] if c.get("settings", {}).get("user_list_id"))


def test_consent_traits_and_refresh_after_are_accepted() -> None:
    config = base()
    _google(config)["settings"].update(
        consent={
            "ad_user_data": {"trait": "plan"},
            "ad_personalization": {"trait": "plan", "granted": ["pro"]},
        },
        refresh_after="90d",
    )
    assert problems_of(config) == []


def test_unknown_consent_trait_is_refused() -> None:
    config = base()
    index = config["connections"].index(_google(config))
    _google(config)["settings"]["consent"] = {
        "ad_user_data": {"trait": "consent_adz"},
        "ad_personalization": {"trait": "plan"},
    }
    problems = problems_of(config)
    assert [p.path for p in problems] == [f"connections[{index}].settings.consent.ad_user_data.trait"], (
        problems
    )
    assert "unknown trait 'consent_adz'" in problems[0].message


def test_meta_eligibility_condition_trait_is_checked() -> None:
    config = base()
    meta = next(c for c in config["connections"] if c["destination"] == "meta")
    meta["settings"] = {"eligible_when": {"trait": "marketing_opt_in"}}
    problems = problems_of(config)
    assert any(p.path.endswith("settings.eligible_when.trait") for p in problems), problems


def test_refresh_after_beyond_the_membership_lifespan_is_refused() -> None:
    config = base()
    index = config["connections"].index(_google(config))
    _google(config)["settings"]["refresh_after"] = "600d"
    problems = problems_of(config)
    assert any(
        p.path.startswith(f"connections[{index}].settings") and "540 days" in p.message for p in problems
    ), problems


def test_consent_needs_both_purposes() -> None:
    config = base()
    index = config["connections"].index(_google(config))
    _google(config)["settings"]["consent"] = {"ad_user_data": {"trait": "consent_ads"}}
    problems = problems_of(config)
    assert any(p.path.startswith(f"connections[{index}].settings") for p in problems), problems


def test_every_list_destination_takes_eligibility_and_refresh() -> None:
    """Consent and upkeep are list-destination features, not one platform's: each list type's connection
    settings accept them (a new list destination without them fails here)."""
    lists = [t for t in CATALOGUE.values() if t.kind == "list"]
    assert len(lists) >= 4
    for found in lists:
        fields = found.connection_settings.model_fields
        assert "refresh_after" in fields, found.type_name
        assert "eligible_when" in fields or "consent" in fields, found.type_name
