"""`validate` enforces the SFMC, Intercom and Customer.io rules: every problem in one pass, each with its path."""

from typing import Any

from activation_pipeline_tests.test_config.conftest import base, problems_of

SFMC = {
    "base_url": "https://mc-x.auth.marketingcloudapis.com",
    "client_id": {"env": "SFMC_ID"},
    "client_secret": {"env": "SFMC_SECRET"},
}


def with_destinations(*connections: dict[str, Any], sfmc: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base workspace plus one destination of each of these types and the given connections."""
    config = base()
    config["destinations"] += [
        {"id": "sfmc", "type": "salesforce_marketing_cloud", "settings": {**SFMC, **(sfmc or {})}},
        {"id": "sfmc_lists", "type": "salesforce_marketing_cloud_lists", "settings": SFMC},
        {"id": "intercom", "type": "intercom", "settings": {"access_token": {"env": "IC"}}},
        {"id": "cio", "type": "customerio", "settings": {"site_id": "s1", "api_key": {"env": "CIO"}}},
    ]
    config["connections"] += list(connections)
    return config


def test_valid_connections_to_the_new_types() -> None:
    """Identify and track to SFMC with both data extensions, a list with its data extension, Intercom tags and
    attributes, Customer.io traits: no problem."""
    config = with_destinations(
        {"source": "audience:buyers", "destination": "sfmc", "send_track": True},
        {"source": "audience:buyers", "destination": "sfmc_lists", "settings": {"data_extension_key": "Buyers"}},
        {"source": "audience:buyers", "destination": "intercom"},
        {"source": "audience:browsers", "destination": "intercom", "send_identify": False, "send_track": True,
         "settings": {"audience_as": "attribute"}},
        {"source": "trait:revenue_90d", "destination": "cio", "send_track": True},
        sfmc={"contact_data_extension_key": "Contacts", "event_data_extension_key": "Events"},
    )  # fmt: skip
    assert problems_of(config) == []


def test_every_rule_broken_at_once_is_reported_with_paths() -> None:
    """Missing data extensions, a missing list key, tags without identify, bad attribute names, an unknown
    Intercom option and SFMC list ID Sync without a subscriber key: all reported in one pass."""
    config = with_destinations(
        {"source": "audience:buyers", "destination": "sfmc", "send_track": True},
        {"source": "audience:buyers", "destination": "sfmc_lists"},
        {"source": "audience:browsers", "destination": "sfmc_lists", "setup": "customized",
         "settings": {"data_extension_key": "B"},
         "id_sync": [{"identifier": "phone", "as": "phone", "strategy": "all"}]},
        {"source": "audience:buyers", "destination": "intercom", "send_identify": False, "send_track": True},
        {"source": "audience:browsers", "destination": "intercom", "setup": "customized",
         "trait_enrichment": [{"trait": "first_name", "as": "profile.first_name"}],
         "settings": {"audience_as": "label"}},
    )  # fmt: skip
    found = {(p.path, p.message) for p in problems_of(config)}
    paths = {path for path, _ in found}
    first = len(base()["connections"])
    expected = {
        "destinations[5].settings": "contact_data_extension_key",
        f"connections[{first}].send_identify": "contact_data_extension_key",
        f"connections[{first}].send_track": "event_data_extension_key",
        f"connections[{first + 1}].settings.data_extension_key": "",
        f"connections[{first + 2}].id_sync": "subscriber key",
        f"connections[{first + 3}].send_identify": "send_identify",
        f"connections[{first + 4}].trait_enrichment[0].as": "may not contain '.' or '$'",
        f"connections[{first + 4}].settings.audience_as": "",
    }
    assert set(expected) <= paths, "\n".join(sorted(map(str, found)))
    for path, fragment in expected.items():
        assert any(p == path and fragment in m for p, m in found), (path, fragment)


def test_intercom_audience_options_do_not_apply_to_traits() -> None:
    """audience_as on a computed-trait connection is a mistake the validator names."""
    config = with_destinations(
        {"source": "trait:revenue_90d", "destination": "intercom", "settings": {"audience_as": "attribute"}}
    )
    assert any(
        p.path.endswith("settings") and "apply only to audiences" in p.message for p in problems_of(config)
    )


def test_traits_cannot_go_to_the_sfmc_list_type() -> None:
    """The list type takes audiences only (the catalogue's kind drives the shared rule)."""
    config = with_destinations(
        {"source": "trait:revenue_90d", "destination": "sfmc_lists", "settings": {"data_extension_key": "X"}}
    )
    assert any("list destination" in p.message for p in problems_of(config))
