"""Validation of the contact destinations (HubSpot, Zendesk, Mailchimp, SendGrid): required mappings (email,
Zendesk's name), identify only, per-connection settings, every problem in one pass with its path and line."""

from typing import Any

from .conftest import base, problems_of

DESTINATIONS: list[dict[str, Any]] = [
    {"id": "hubspot", "type": "hubspot", "settings": {"access_token": {"env": "HS"}}},
    {
        "id": "zendesk",
        "type": "zendesk",
        "settings": {
            "base_url": "https://acme.zendesk.com",
            "email": "a@acme.io",
            "api_token": {"env": "ZD"},
        },
    },
    {"id": "mailchimp", "type": "mailchimp", "settings": {"api_key": {"env": "MC"}, "list_id": "abc123"}},
    {"id": "sendgrid", "type": "sendgrid", "settings": {"api_key": {"env": "SG"}}},
]
EMAIL_ONLY = [{"identifier": "email", "as": "email", "strategy": "last_added"}]
GOOD: list[dict[str, Any]] = [
    {"source": "audience:buyers", "destination": "hubspot", "settings": {"list_id": "12"}},
    {"source": "trait:revenue_90d", "destination": "hubspot"},
    {"source": "audience:buyers", "destination": "zendesk"},
    {"source": "audience:buyers", "destination": "mailchimp", "setup": "customized", "id_sync": EMAIL_ONLY,
     "trait_enrichment": [{"trait": "first_name", "as": "FNAME"}]},
    {"source": "trait:revenue_90d", "destination": "mailchimp", "settings": {"merge_field": "REV90"}},
    {"source": "audience:buyers", "destination": "sendgrid", "settings": {"list_id": "0f2c-11"},
     "setup": "customized", "trait_enrichment": [{"trait": "first_name", "as": "first_name"}]},
]  # fmt: skip


def workspace(destinations: list[dict[str, Any]], connections: list[dict[str, Any]]) -> dict[str, Any]:
    """The base workspace with these destinations and connections added."""
    config = base()
    config["destinations"] += destinations
    config["connections"] += connections
    return config


def test_well_configured_contact_destinations_are_valid() -> None:
    """Each of the four with its required mappings and settings validates."""
    assert problems_of(workspace(DESTINATIONS, GOOD)) == []


def test_every_broken_rule_reported_in_one_pass_with_paths() -> None:
    """Missing email mappings, Zendesk's name, track calls, list ids, merge fields and key names, all at once."""
    destinations = [dict(d) for d in DESTINATIONS]
    destinations[1] = {
        **destinations[1],
        "settings": {**destinations[1]["settings"], "name_fallback": "none"},
    }
    phone_only = [{"identifier": "phone", "as": "phone", "strategy": "last_added"}]
    broken: list[dict[str, Any]] = [
        {"source": "audience:buyers", "destination": "hubspot", "setup": "customized", "id_sync": phone_only,
         "trait_enrichment": [{"trait": "first_name", "as": "First Name"}]},
        {"source": "audience:buyers", "destination": "zendesk", "send_track": True},
        {"source": "trait:revenue_90d", "destination": "mailchimp", "setup": "customized", "id_sync": phone_only,
         "trait_enrichment": [{"trait": "first_name", "as": "first_name"}]},
        {"source": "trait:revenue_90d", "destination": "sendgrid", "setup": "customized",
         "trait_enrichment": [{"trait": "plan", "as": "plan"}]},
    ]  # fmt: skip
    problems = problems_of(workspace(destinations, broken))
    found = {(p.path, fragment) for p in problems for fragment in FRAGMENTS if fragment in p.message}
    first = len(base()["connections"])
    expected = {
        (f"connections[{first}].id_sync", "map an identifier as 'email'"),
        (f"connections[{first}].settings", "settings.list_id"),
        (f"connections[{first}].trait_enrichment[0].as", "not a HubSpot property name"),
        (f"connections[{first + 1}].send_track", "identify calls only"),
        (f"connections[{first + 1}].trait_enrichment", "Zendesk requires a name"),
        (f"connections[{first + 2}].id_sync", "map an identifier as 'email'"),
        (f"connections[{first + 2}].settings", "settings.merge_field"),
        (f"connections[{first + 2}].trait_enrichment[0].as", "not a Mailchimp merge tag"),
        (f"connections[{first + 3}].source", "SendGrid lists hold audiences"),
        (f"connections[{first + 3}].settings.list_id", "required"),
        (f"connections[{first + 3}].trait_enrichment[0].as", "neither a SendGrid reserved field"),
    }
    assert expected <= found, "\n".join(map(str, problems))
    assert all(p.line is not None for p in problems)


FRAGMENTS = (
    "map an identifier as 'email'",
    "settings.list_id",
    "not a HubSpot property name",
    "identify calls only",
    "Zendesk requires a name",
    "settings.merge_field",
    "not a Mailchimp merge tag",
    "SendGrid lists hold audiences",
    "required",
    "neither a SendGrid reserved field",
)


def test_zendesk_name_mapping_satisfies_the_rule() -> None:
    """With name_fallback none, a trait mapped as `name` is what Zendesk needs."""
    destinations = [dict(d) for d in DESTINATIONS]
    destinations[1] = {
        **destinations[1],
        "settings": {**destinations[1]["settings"], "name_fallback": "none"},
    }
    named = {"source": "audience:buyers", "destination": "zendesk", "setup": "customized",
             "trait_enrichment": [{"trait": "first_name", "as": "name"}]}  # fmt: skip
    assert problems_of(workspace(destinations, [named])) == []
