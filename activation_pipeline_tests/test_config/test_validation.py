"""Every validation rule, each broken once in an otherwise valid workspace: the path and the sentence.

Cases are data (a change, the expected path, a fragment of the message) so each rule reads as one line.
"""

from collections.abc import Callable
from typing import Any

import pytest

from activation_pipeline.config import Problem

from .conftest import base, problems_of

Change = Callable[[dict[str, Any]], object]


def conn(i: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Accessor for connections[i]."""
    return lambda c: c["connections"][i]


def set_in(path: list[Any], value: Any) -> Change:
    """A change that sets a nested value."""

    def change(config: dict[str, Any]) -> None:
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def append_to(path: list[Any], value: Any) -> Change:
    """A change that appends to a nested list."""

    def change(config: dict[str, Any]) -> None:
        target = config
        for part in path:
            target = target[part]
        target.append(value)

    return change


CASES: list[tuple[str, Change, str, str]] = [
    # ---- trait enrichment and destination capabilities (seeds: Trait Enrichment, Trait Activation overview)
    (
        "enrichment on classic destination",
        set_in(["connections", 4, "trait_enrichment"], [{"trait": "plan", "as": "plan"}]),
        "connections[4].trait_enrichment",
        "trait enrichment is not available on classic destinations",
    ),
    (
        "facebook key not allowed",
        set_in(["connections", 0, "trait_enrichment"], [{"trait": "first_name", "as": "FIRST"}]),
        "connections[0].trait_enrichment[0].as",
        "'FIRST' is not a key Facebook Custom Audiences accepts",
    ),
    (
        "facebook identifier key not allowed",
        set_in(["connections", 0, "id_sync", 0, "as"], "mail"),
        "connections[0].id_sync[0].as",
        "each mapping must map to one of",
    ),
    (
        "google requires email",
        set_in(
            ["connections", 1, "id_sync"], [{"identifier": "phone", "as": "phone", "strategy": "last_added"}]
        ),
        "connections[1].id_sync",
        "Google Ads requires email",
    ),
    (
        "google one phone",
        set_in(
            ["connections", 1, "id_sync"],
            [
                {"identifier": "email", "as": "email", "strategy": "last_added"},
                {"identifier": "phone", "as": "phone", "strategy": "all"},
                {"identifier": "crm_id", "as": "phone", "strategy": "all"},
            ],
        ),
        "connections[1].id_sync[2].as",
        "only one trait per audience may be mapped to Google as phone",
    ),
    (
        "at most three all",
        set_in(
            ["connections", 3, "id_sync"],
            [{"identifier": n, "as": n, "strategy": "all"} for n in ("email", "phone", "crm_id", "user_id")],
        ),
        "connections[3].id_sync[3].strategy",
        "at most three identifiers may use 'all'",
    ),
    (
        "audience key as enrichment trait",
        set_in(["connections", 0, "trait_enrichment"], [{"trait": "buyers", "as": "firstName"}]),
        "connections[0].trait_enrichment[0].trait",
        "is this connection's own audience key",
    ),
    (
        "idfa needs send mobile ids",
        set_in(["connections", 0, "send_mobile_ids"], False),
        "connections[0].id_sync[1].identifier",
        "turn on send_mobile_ids",
    ),
    (
        "default setup with id sync",
        set_in(["connections", 4, "setup"], "default"),
        "connections[4].setup",
        "need setup: customized",
    ),
    (
        "computed trait to list destination",
        set_in(["connections", 2, "source"], "trait:views_30d"),
        "connections[2].source",
        "computed traits are sent only to event destinations",
    ),
    (
        "event destination sending nothing",
        lambda c: conn(3)(c).update(send_identify=False, send_track=False),
        "connections[3]",
        "nothing would be sent",
    ),
    (
        "marketo needs the lookup field",
        lambda c: conn(2)(c).update(
            setup="customized", id_sync=[{"identifier": "phone", "as": "phone", "strategy": "all"}]
        ),
        "connections[2].id_sync",
        "Marketo finds leads by 'email'",
    ),
    (
        "name mapped twice",
        set_in(["connections", 0, "trait_enrichment"], [{"trait": "first_name", "as": "email"}]),
        "connections[0].trait_enrichment[0].as",
        "'email' is already mapped by connections[0].id_sync[0]",
    ),
    (
        "identifier listed twice",
        append_to(
            ["connections", 4, "id_sync"], {"identifier": "crm_id", "as": "crm2", "strategy": "last_added"}
        ),
        "connections[4].id_sync[1].identifier",
        "identifier 'crm_id' is listed twice",
    ),
    (
        "unknown strategy",
        set_in(["connections", 4, "id_sync", 0, "strategy"], "newest"),
        "connections[4].id_sync[0].strategy",
        "unknown strategy 'newest'; use one of last_added, first_added, all",
    ),
    (
        "google terms of service",
        set_in(["destinations", 1, "settings", "terms_of_service_accepted"], False),
        "destinations[1].settings.terms_of_service_accepted",
        "terms of service",
    ),
    (
        "connection settings checked per type",
        set_in(["connections", 2, "settings"], {}),
        "connections[2].settings.list_id",
        "required key is missing",
    ),
    # ---- unknown references
    (
        "unknown trait in audience",
        set_in(["audiences", 0, "where", "trait"], "revenue_9d"),
        "audiences[0].where.trait",
        "unknown trait 'revenue_9d' (did you mean 'revenue_90d'?)",
    ),
    (
        "unknown audience in condition",
        set_in(["audiences", 1, "where", "all", 1, "not", "audience"], "buyer"),
        "audiences[1].where.all[1].not.audience",
        "unknown audience 'buyer'",
    ),
    (
        "account audience on user trait",
        set_in(["audiences", 2, "where", "trait"], "first_name"),
        "audiences[2].where.trait",
        "unknown account trait 'first_name'",
    ),
    (
        "user audience on account audience",
        set_in(["audiences", 0, "where"], {"audience": "big_accounts"}),
        "audiences[0].where.audience",
        "cannot test membership of the account-level audience",
    ),
    (
        "unknown destination",
        set_in(["connections", 0, "destination"], "metta"),
        "connections[0].destination",
        "unknown destination 'metta' (did you mean 'meta'?)",
    ),
    (
        "unknown audience source",
        set_in(["connections", 0, "source"], "audience:nobody"),
        "connections[0].source",
        "unknown audience 'nobody'",
    ),
    (
        "unknown trait source",
        set_in(["connections", 3, "source"], "trait:nothing"),
        "connections[3].source",
        "unknown computed or SQL trait 'nothing'",
    ),
    (
        "unknown enrichment trait",
        set_in(["connections", 3, "trait_enrichment", 0, "trait"], "plna"),
        "connections[3].trait_enrichment[0].trait",
        "unknown trait 'plna'",
    ),
    (
        "unknown identifier in id sync",
        set_in(["connections", 4, "id_sync", 0, "identifier"], "loyalty_id"),
        "connections[4].id_sync[0].identifier",
        "unknown identifier 'loyalty_id'",
    ),
    (
        "unknown sql identifier",
        set_in(["traits", "sql", 0, "identifier"], "customer_no"),
        "traits.sql[0].identifier",
        "unknown identifier 'customer_no'",
    ),
    (
        "sql file missing",
        set_in(["traits", "sql", 0, "query"], "sql/missing.sql"),
        "traits.sql[0].query",
        "SQL file 'sql/missing.sql' does not exist",
    ),
    (
        "audience cycle",
        set_in(["audiences", 0, "where"], {"audience": "browsers"}),
        "audiences[0].where",
        "audiences refer to each other in a circle: buyers -> browsers -> buyers",
    ),
    # ---- duplicates
    (
        "duplicate trait key",
        append_to(["traits", "computed"], {"key": "views_30d", "type": "counter", "event": "X"}),
        "traits.computed[2].key",
        "user trait key 'views_30d' is already used by traits.computed[1].key",
    ),
    (
        "custom trait clashes with computed",
        append_to(["traits", "custom"], "revenue_90d"),
        "traits.computed[0].key",
        "already used by traits.custom[4]",
    ),
    (
        "duplicate audience key",
        append_to(["audiences"], {"key": "buyers", "where": {"event": "X"}}),
        "audiences[3].key",
        "audience key 'buyers' is already used by audiences[0]",
    ),
    (
        "audience key equals trait key",
        append_to(["audiences"], {"key": "views_30d", "where": {"event": "X"}}),
        "audiences[3].key",
        "is also the trait traits.computed[1].key",
    ),
    (
        "duplicate destination id",
        append_to(
            ["destinations"], {"id": "hook", "type": "webhook", "settings": {"url": "https://x.example"}}
        ),
        "destinations[5].id",
        "destination id 'hook' is already used by destinations[4]",
    ),
    (
        "duplicate connection",
        append_to(
            ["connections"], {"source": "audience:browsers", "destination": "hook", "send_track": True}
        ),
        "connections[5]",
        "connection 'audience.browsers.hook' is already defined by connections[4]",
    ),
    # ---- windows, operators, counts
    (
        "window without unit",
        set_in(["traits", "computed", 1, "window"], "30"),
        "traits.computed[1].window",
        "'30' is not a time window",
    ),
    (
        "window unknown unit",
        set_in(["audiences", 1, "where", "all", 0, "within"], "7y"),
        "audiences[1].where.all[0].within",
        "is not a time window",
    ),
    (
        "zero window",
        set_in(["traits", "computed", 0, "window"], "0d"),
        "traits.computed[0].window",
        "must be longer than zero",
    ),
    (
        "window too long",
        set_in(["traits", "computed", 0, "window"], "4000d"),
        "traits.computed[0].window",
        "at most 3650d",
    ),
    (
        "unknown operator",
        set_in(["audiences", 0, "where", "op"], "=>"),
        "audiences[0].where.op",
        "unknown operator '=>'",
    ),
    (
        "list operator needs list",
        lambda c: c["audiences"][0]["where"].update(op="in", value=5),
        "audiences[0].where",
        "operator 'in' needs a non-empty list",
    ),
    (
        "ordering with list",
        set_in(["audiences", 0, "where", "value"], [1, 2]),
        "audiences[0].where",
        "compares with one value, not a list",
    ),
    (
        "exists with value",
        set_in(["audiences", 0, "where", "op"], "exists"),
        "audiences[0].where",
        "operator 'exists' takes no value",
    ),
    (
        "contains a number",
        set_in(["audiences", 0, "where", "op"], "contains"),
        "audiences[0].where",
        "operator 'contains' needs a text value",
    ),
    (
        "filter operator",
        set_in(["traits", "computed", 0, "where"], [{"property": "revenue", "op": "gt", "value": 1}]),
        "traits.computed[0].where[0].op",
        "unknown operator 'gt'",
    ),
    (
        "at least above at most",
        set_in(["audiences", 1, "where", "all", 0], {"event": "Product Viewed", "at_least": 5, "at_most": 2}),
        "audiences[1].where.all[0]",
        "at_least (5) is greater than at_most (2)",
    ),
    (
        "condition with two kinds",
        set_in(["audiences", 0, "where"], {"event": "X", "trait": "plan", "op": "exists"}),
        "audiences[0].where",
        "a condition needs exactly one of: all, any, not, event, trait, audience",
    ),
    (
        "historical false needs created_at",
        set_in(["audiences", 0, "historical"], False),
        "audiences[0]",
        "needs created_at",
    ),
    (
        "unknown computed trait type",
        set_in(["traits", "computed", 1, "type"], "count"),
        "traits.computed[1]",
        "'type' must be one of: counter, aggregation",
    ),
    (
        "unknown aggregation function",
        set_in(["traits", "computed", 0, "function"], "median"),
        "traits.computed[0].function",
        "Input should be 'sum', 'avg', 'min' or 'max'",
    ),
    # ---- identity
    (
        "custom identifier not declared custom",
        set_in(["identity", "identifiers", "loyalty_id"], {}),
        "identity.identifiers",
        "'loyalty_id' is not a standard identifier",
    ),
    (
        "standard identifier as custom",
        set_in(["identity", "identifiers", "email"], {"custom": True}),
        "identity.identifiers",
        "'email' is a standard identifier and cannot be custom",
    ),
    (
        "limit below one",
        set_in(["identity", "identifiers", "email", "limit"], 0),
        "identity.identifiers.email.limit",
        "greater than or equal to 1",
    ),
    # ---- shapes
    (
        "unknown key",
        set_in(["connections", 0, "send_identfy"], True),
        "connections[0].send_identfy",
        "unknown key",
    ),
    (
        "unknown destination type",
        set_in(["destinations", 4, "type"], "pardot"),
        "destinations[4]",
        "'type' must be one of: braze, customerio, facebook_custom_audiences",
    ),
    ("bad key format", set_in(["audiences", 0, "key"], "Buyers!"), "audiences[0].key", "must be snake_case"),
    (
        "bad cron",
        set_in(["destinations", 4, "schedule"], "every hour"),
        "destinations[4].schedule",
        "is not a valid cron expression",
    ),
    (
        "secret written inline",
        set_in(["destinations", 0, "settings", "access_token"], "EAAB-literal-token"),
        "destinations[0].settings.access_token",
        "secrets come only from environment variables",
    ),
]


@pytest.mark.parametrize(("change", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule(change: Change, path: str, fragment: str) -> None:
    """Breaking one rule yields a problem at the expected path with a message naming the problem."""
    config = base()
    change(config)
    problems = problems_of(config)
    assert any(p.path == path and fragment in p.message for p in problems), "\n".join(map(str, problems))


def test_base_workspace_is_valid() -> None:
    """The base every case starts from is itself valid."""
    assert problems_of(base()) == []


def test_secret_value_never_echoed() -> None:
    """A secret written inline is reported without repeating its value."""
    config = base()
    config["destinations"][0]["settings"]["access_token"] = "EAAB-super-secret"
    assert not any("super-secret" in str(p) for p in problems_of(config))


def test_every_problem_reported_at_once_with_lines() -> None:
    """Problems in different sections all come back together, each with its line in the file."""
    config = base()
    config["traits"]["computed"][1]["window"] = "30"
    config["audiences"][0]["where"]["trait"] = "missing_trait"
    config["connections"][4]["trait_enrichment"] = [{"trait": "plan", "as": "plan"}]
    config["connections"][0]["destination"] = "nowhere"
    problems = problems_of(config)
    paths = {p.path for p in problems}
    assert {
        "traits.computed[1].window",
        "audiences[0].where.trait",
        "connections[4].trait_enrichment",
        "connections[0].destination",
    } <= paths
    assert all(p.line is not None and p.line > 1 for p in problems)
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)


def test_broken_item_does_not_cascade() -> None:
    """An audience that fails its own validation is still known: references to it are not also errors."""
    config = base()
    config["audiences"][0]["where"] = {"trait": "revenue_90d", "op": "~~", "value": 1}
    problems = problems_of(config)
    assert [p.path for p in problems] == ["audiences[0].where.op"]


def test_duplicate_yaml_key_is_reported() -> None:
    """YAML silently keeps the last of two equal keys; the validator says so instead."""
    text = "workspace: a\nworkspace: b\nsources: {events: {path: e/}}\n"
    problems = problems_of(text)
    assert problems == [Problem("workspace", "key appears twice; the first would be silently lost", 2)]


def test_invalid_yaml_gives_line() -> None:
    """Unparseable YAML is one problem with its line."""
    problems = problems_of("workspace: a\nsources: [unclosed\n")
    assert len(problems) == 1 and problems[0].message.startswith("not valid YAML") and problems[0].line


def test_not_a_mapping() -> None:
    """A file that is not a mapping says what a workspace file looks like."""
    assert "must be a YAML mapping" in problems_of("- just\n- a list\n")[0].message


def test_missing_required_sections() -> None:
    """Required top-level keys missing are each named."""
    paths = {p.path for p in problems_of("description: nothing else\n")}
    assert {"workspace", "sources"} <= paths
