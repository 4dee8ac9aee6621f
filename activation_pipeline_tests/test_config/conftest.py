"""A small valid workspace that each validation test breaks in one way."""

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from activation_pipeline.config import Problem, validate_text

BASE: dict[str, Any] = {
    "workspace": "shop",
    "sources": {"events": {"path": "events/"}},
    "identity": {
        "identifiers": {
            "user_id": {"limit": 1},
            "email": {"limit": 5},
            "phone": {},
            "anonymous_id": {},
            "ios.idfa": {},
            "android.id": {},
            "crm_id": {"custom": True},
        }
    },
    "traits": {
        "custom": ["first_name", "last_name", "phone", "plan"],
        "account": ["plan", "employees"],
        "computed": [
            {
                "key": "revenue_90d",
                "type": "aggregation",
                "function": "sum",
                "event": "Order Completed",
                "property": "revenue",
                "window": "90d",
            },
            {"key": "views_30d", "type": "counter", "event": "Product Viewed", "window": "30d"},
        ],
        "sql": [
            {"key": "tier", "query": "SELECT user_id, 'gold' AS tier FROM tracks", "identifier": "user_id"}
        ],
    },
    "audiences": [
        {"key": "buyers", "where": {"trait": "revenue_90d", "op": ">", "value": 100}},
        {
            "key": "browsers",
            "where": {
                "all": [
                    {"event": "Product Viewed", "within": "7d", "at_least": 2},
                    {"not": {"audience": "buyers"}},
                ]
            },
        },
        {
            "key": "big_accounts",
            "level": "account",
            "where": {"trait": "employees", "op": ">=", "value": 500},
        },
    ],
    "destinations": [
        {
            "id": "meta",
            "type": "facebook_custom_audiences",
            "settings": {"ad_account_id": "123", "access_token": {"env": "META_TOKEN"}},
        },
        {
            "id": "gads",
            "type": "google_ads_remarketing_lists",
            "settings": {
                "operating_account_id": "123-456-7890",
                "access_token": {"env": "GADS_TOKEN"},
                "terms_of_service_accepted": True,
            },
        },
        {
            "id": "mkto",
            "type": "marketo_static_lists",
            "settings": {
                "base_url": "https://123-abc-456.mktorest.com",
                "client_id": {"env": "MK_ID"},
                "client_secret": {"env": "MK_SECRET"},
            },
        },
        {
            "id": "braze",
            "type": "braze",
            "settings": {"base_url": "https://rest.example.com", "api_key": {"env": "BZ"}},
        },
        {"id": "hook", "type": "webhook", "settings": {"url": "https://hooks.example.com/x"}},
    ],
    "connections": [
        {
            "source": "audience:buyers",
            "destination": "meta",
            "setup": "customized",
            "send_mobile_ids": True,
            "trait_enrichment": [{"trait": "first_name", "as": "firstName"}],
            "id_sync": [
                {"identifier": "email", "as": "email", "strategy": "last_added"},
                {"identifier": "ios.idfa", "as": "context.device.advertisingId", "strategy": "all"},
            ],
        },
        {
            "source": "audience:buyers",
            "destination": "gads",
            "setup": "customized",
            "settings": {"user_list_id": "42"},
            "id_sync": [
                {"identifier": "email", "as": "email", "strategy": "last_added"},
                {"identifier": "phone", "as": "phone", "strategy": "first_added"},
            ],
        },
        {"source": "audience:browsers", "destination": "mkto", "settings": {"list_id": 7}},
        {
            "source": "trait:revenue_90d",
            "destination": "braze",
            "setup": "customized",
            "send_track": True,
            "trait_enrichment": [{"trait": "plan", "as": "plan"}],
        },
        {
            "source": "audience:browsers",
            "destination": "hook",
            "setup": "customized",
            "id_sync": [{"identifier": "crm_id", "as": "crm", "strategy": "all"}],
        },
    ],
}


def base() -> dict[str, Any]:
    """A fresh deep copy of the valid base workspace."""
    return copy.deepcopy(BASE)


def problems_of(config: dict[str, Any] | str, base_dir: Path | None = None) -> list[Problem]:
    """Validate a workspace given as a dict or YAML text and return its problems."""
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    _, problems = validate_text(text, base_dir=base_dir)
    return problems


@pytest.fixture
def check() -> Callable[..., list[Problem]]:
    """Apply a change to the base workspace and return the problems, asserting there is at least one."""

    def _check(change: Callable[[dict[str, Any]], object]) -> list[Problem]:
        config = base()
        change(config)
        problems = problems_of(config)
        assert problems, "the broken workspace validated"
        return problems

    return _check
