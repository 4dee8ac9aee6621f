"""Journey configuration: a valid journey loads, and each journey rule broken once gives its path and sentence."""

from collections.abc import Callable
from typing import Any

import pytest

from activation_pipeline.config import validate_text
from activation_pipeline.config.journeys import SendStep, SplitStep, WaitStep

from ..test_config.conftest import base, problems_of


def journey() -> dict[str, Any]:
    """A valid journey over the base workspace of the configuration tests."""
    return {
        "key": "browse_abandon",
        "name": "Browse abandonment",
        "entry": {"audience": "browsers"},
        "historical": False,
        "reentry": "after_exit",
        "reentry_wait": "7d",
        "exit": {"audience": "buyers"},
        "steps": [
            {"key": "wait_a_day", "type": "wait", "duration": "1d", "next": "ordered"},
            {
                "key": "ordered",
                "type": "split",
                "condition": {"event": "Order Completed", "since": "entry"},
                "else": "plan_branch",
            },
            {
                "key": "plan_branch",
                "type": "branch",
                "branches": [{"when": {"trait": "plan", "op": "=", "value": "pro"}, "next": "to_braze"}],
                "else": "to_hook",
            },
            {
                "key": "to_braze",
                "type": "send",
                "destinations": [
                    {
                        "destination": "braze",
                        "setup": "customized",
                        "send_track": True,
                        "trait_enrichment": ["first_name"],
                        "id_sync": [{"identifier": "email", "as": "email", "strategy": "last_added"}],
                    },
                    {"destination": "mkto", "settings": {"list_id": 9}},
                ],
            },
            {"key": "to_hook", "type": "send", "destinations": [{"destination": "hook"}]},
        ],
    }


def with_journey(change: Callable[[dict[str, Any]], object] | None = None) -> dict[str, Any]:
    """The base workspace with the valid journey, changed by `change`."""
    config = base()
    config["journeys"] = [journey()]
    if change is not None:
        change(config["journeys"][0])
    return config


def test_valid_journey_loads_with_its_send_targets_as_connections() -> None:
    import yaml

    workspace, problems = validate_text(yaml.safe_dump(with_journey(), sort_keys=False))
    assert problems == []
    assert workspace is not None
    j = workspace.journey("browse_abandon")
    assert [type(s) for s in j.steps][:2] == [WaitStep, SplitStep]
    assert isinstance(j.steps[3], SendStep)
    ids = [c.connection_id for c in workspace.delivery_connections()[len(workspace.connections) :]]
    assert ids == [
        "journey.browse_abandon.to_braze.braze",
        "journey.browse_abandon.to_braze.mkto",
        "journey.browse_abandon.to_hook.hook",
    ]
    assert workspace.connection("journey.browse_abandon.to_hook.hook").source_kind == "journey"


def step(k: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Accessor for the journey's steps[k]."""
    return lambda j: j["steps"][k]


CASES: list[tuple[str, Callable[[dict[str, Any]], object], str, str]] = [
    (
        "unknown step type",
        lambda j: step(0)(j).update(type="pause"),
        "journeys[0].steps[0]",
        "unknown step: 'type' must be one of wait, split, branch, send",
    ),
    (
        "unknown next step",
        lambda j: step(0)(j).update(next="orderd"),
        "journeys[0].steps[0].next",
        "unknown step 'orderd'",
    ),
    (
        "unknown branch target",
        lambda j: step(2)(j)["branches"][0].update(next="nowhere"),
        "journeys[0].steps[2].branches[0].next",
        "unknown step 'nowhere'",
    ),
    (
        "unreachable step",
        lambda j: step(1)(j).update({"else": "to_hook"}),
        "journeys[0].steps[2]",
        "step 'plan_branch' is unreachable",
    ),
    (
        "cycle",
        lambda j: step(4)(j).update(next="ordered"),
        "journeys[0].steps[1]",
        "steps lead back to themselves: ordered -> plan_branch -> to_hook -> ordered",
    ),
    (
        "duplicate step key",
        lambda j: step(4)(j).update(key="to_braze"),
        "journeys[0].steps[4].key",
        "step key 'to_braze' is already used by steps[3]",
    ),
    (
        "enrichment on a classic destination in a send step",
        lambda j: step(4)(j)["destinations"][0].update(setup="customized", trait_enrichment=["plan"]),
        "journeys[0].steps[4].destinations[0].trait_enrichment",
        "trait enrichment is not available on classic destinations",
    ),
    (
        "facebook key not allowed in a send step",
        lambda j: step(4)(j)["destinations"].append(
            {
                "destination": "meta",
                "setup": "customized",
                "trait_enrichment": [{"trait": "plan", "as": "PLAN"}],
            }
        ),
        "journeys[0].steps[4].destinations[1].trait_enrichment[0].as",
        "'PLAN' is not a key Facebook Custom Audiences accepts",
    ),
    (
        "idfa without send_mobile_ids in a send step",
        lambda j: step(3)(j)["destinations"][0]["id_sync"].append(
            {"identifier": "ios.idfa", "as": "idfa", "strategy": "all"}
        ),
        "journeys[0].steps[3].destinations[0].id_sync[1].identifier",
        "turn on send_mobile_ids",
    ),
    (
        "unknown destination in a send step",
        lambda j: step(4)(j)["destinations"][0].update(destination="hooks"),
        "journeys[0].steps[4].destinations[0].destination",
        "unknown destination 'hooks'",
    ),
    (
        "same destination twice in a step",
        lambda j: step(4)(j)["destinations"].append({"destination": "hook"}),
        "journeys[0].steps[4].destinations[1].destination",
        "destination 'hook' is already a target of this step",
    ),
    (
        "unknown audience in the entry",
        lambda j: j.update(entry={"audience": "buyerz"}),
        "journeys[0].entry.audience",
        "unknown audience 'buyerz'",
    ),
    (
        "unknown trait in a branch",
        lambda j: step(2)(j)["branches"][0].update(when={"trait": "plann", "op": "=", "value": 1}),
        "journeys[0].steps[2].branches[0].when.trait",
        "unknown trait 'plann'",
    ),
    (
        "since in the entry",
        lambda j: j.update(entry={"event": "Product Viewed", "since": "entry"}),
        "journeys[0].entry.since",
        "the entry condition cannot count events since entry",
    ),
    (
        "reentry_wait without reentry",
        lambda j: j.update(reentry="never"),
        "journeys[0]",
        "reentry_wait needs reentry: after_exit",
    ),
    (
        "bad wait duration",
        lambda j: step(0)(j).update(duration="1 day"),
        "journeys[0].steps[0].duration",
        "is not a time window",
    ),
    (
        "account audience as entry",
        lambda j: j.update(entry={"audience": "big_accounts"}),
        "journeys[0].entry.audience",
        "journeys take people",
    ),
]


@pytest.mark.parametrize(("name", "change", "path", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_each_journey_rule(
    name: str, change: Callable[[dict[str, Any]], object], path: str, fragment: str
) -> None:
    problems = problems_of(with_journey(change))
    found = [(p.path, p.message) for p in problems]
    assert any(p == path and fragment in m for p, m in found), found


def test_every_problem_in_one_pass() -> None:
    def break_three(j: dict[str, Any]) -> None:
        j["steps"][0]["next"] = "orderd"
        j["steps"][4]["destinations"][0].update(setup="customized", trait_enrichment=["plan"])
        j["entry"] = {"audience": "buyerz"}

    config = with_journey(break_three)
    config["connections"][0]["destination"] = "metaa"
    paths = {p.path for p in problems_of(config)}
    assert {
        "journeys[0].steps[0].next",
        "journeys[0].steps[4].destinations[0].trait_enrichment",
        "journeys[0].entry.audience",
        "connections[0].destination",
    } <= paths


def test_a_journey_source_is_not_a_connection() -> None:
    config = base()
    config["connections"].append({"source": "journey:x.y", "destination": "hook"})
    assert any(
        p.path == "connections[5].source" and "configured under journeys" in p.message
        for p in problems_of(config)
    )
