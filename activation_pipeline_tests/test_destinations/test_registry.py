"""The registry finds every destination folder, and each type's parts agree with its capabilities."""

from pathlib import Path
from typing import Any

import pytest

import activation_pipeline.destinations as destinations_package
from activation_pipeline.destinations.http import ClientOptions
from activation_pipeline.destinations.registry import (
    CATALOGUE,
    DESTINATION_MODELS,
    build_client,
    capabilities,
)

FOLDERS = sorted(
    p.name for p in Path(destinations_package.__path__[0]).iterdir() if (p / "factory.py").is_file()
)

SETTINGS: dict[str, list[dict[str, Any]]] = {
    "facebook_custom_audiences": [{"ad_account_id": "1", "access_token": {"env": "T"}}],
    "google_ads_remarketing_lists": [{"operating_account_id": "1234567890", "access_token": {"env": "T"}}],
    "marketo_static_lists": [
        {"base_url": "http://127.0.0.1:9", "client_id": {"env": "T"}, "client_secret": {"env": "T"}}
    ],
    "braze": [{"base_url": "http://127.0.0.1:9", "api_key": {"env": "T"}}],
    "iterable": [{"api_key": {"env": "T"}}, {"api_key": {"env": "T"}, "bulk": False}],
    "function": [{"handler": "json:dumps"}],
    "salesforce_marketing_cloud": [
        {
            "base_url": "http://127.0.0.1:9",
            "client_id": {"env": "T"},
            "client_secret": {"env": "T"},
            "contact_data_extension_key": "C",
        }
    ],
    "salesforce_marketing_cloud_lists": [
        {"base_url": "http://127.0.0.1:9", "client_id": {"env": "T"}, "client_secret": {"env": "T"}}
    ],
    "intercom": [{"access_token": {"env": "T"}}],
    "customerio": [{"site_id": "1", "api_key": {"env": "T"}}],
    "hubspot": [{"access_token": {"env": "T"}}],
    "zendesk": [{"base_url": "http://127.0.0.1:9", "email": "a@b.io", "api_token": {"env": "T"}}],
    "mailchimp": [
        {"api_key": {"env": "T"}, "list_id": "abc"},
        {"api_key": {"env": "T"}, "list_id": "abc", "base_url": "http://127.0.0.1:9"},
    ],
    "sendgrid": [{"api_key": {"env": "T"}}],
    "webhook": [
        {"url": "http://127.0.0.1:9/hook"},
        {"url": "http://127.0.0.1:9/hook", "batch": True, "batch_size": 250},
        {"url": "http://127.0.0.1:9/hook", "batch_size": 7},
    ],
}


def test_every_folder_is_a_registered_type() -> None:
    """Adding a folder with a factory is all it takes; each registered type has its model and settings."""
    assert sorted(CATALOGUE) == FOLDERS == sorted(SETTINGS)
    assert set(DESTINATION_MODELS) == set(CATALOGUE)


def test_every_http_type_has_a_fake_server() -> None:
    """Only functions (user code run locally) have no fake server."""
    assert sorted(n for n, t in CATALOGUE.items() if t.fake_server is None) == ["function"]


@pytest.mark.parametrize(
    ("type_name", "settings"), [(t, s) for t, variants in SETTINGS.items() for s in variants]
)
def test_client_batches_as_the_capabilities_say(
    type_name: str, settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's batch size is the one progress totals and dry runs use, for every settings variant."""
    monkeypatch.setenv("T", "token")
    destination = DESTINATION_MODELS[type_name].model_validate(
        {"id": "d", "type": type_name, "settings": settings}
    )
    client = build_client(destination, ClientOptions())
    try:
        assert client.max_batch == capabilities(destination).max_batch
    finally:
        client.close()


def test_settings_adjust_capabilities() -> None:
    """A webhook's batch settings and a destination's own rate limit change its capabilities."""
    single = DESTINATION_MODELS["webhook"].model_validate(
        {"id": "d", "type": "webhook", "settings": {"url": "http://x.example/h"}}
    )
    batched = DESTINATION_MODELS["webhook"].model_validate(
        {
            "id": "d",
            "type": "webhook",
            "settings": {"url": "http://x.example/h", "batch": True, "batch_size": 200},
            "rate_limit": {"requests_per_second": 7},
        }
    )
    assert capabilities(single).requests_for(250) == 250
    assert (capabilities(single).max_batch, capabilities(single).rate_limit) == (100, 50)
    assert capabilities(batched).requests_for(450) == 3
    assert (capabilities(batched).max_batch, capabilities(batched).rate_limit) == (200, 7)
