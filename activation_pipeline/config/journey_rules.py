"""Rules of journeys that relate several parts of the workspace: step graph, references, send targets.

Errors: duplicate journey or step keys; a step naming a step that does not exist; a step no path reaches;
steps that lead back to themselves (a cycle); unknown traits or audiences in conditions; `since` in the entry
condition (nothing to count from yet); and every rule a connection to the same destination must follow, at
the send target's own path (`journeys[0].steps[3].destinations[1].trait_enrichment[0].as`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from activation_pipeline.config.journeys import (
    Journey,
    JourneyEventCondition,
    SendStep,
    walk_journey_condition,
)
from activation_pipeline.config.models import AudienceCondition, TraitCondition
from activation_pipeline.config.problems import Loc
from activation_pipeline.config.rules import cycles

if TYPE_CHECKING:
    from activation_pipeline.config.rules import _Checker


def step_edges(journey: Journey) -> dict[str, list[tuple[Loc, str]]]:
    """Step key -> the step keys it leads to, with where each is named (relative to the step)."""
    return {
        step.key: [(where, target) for where, target in step.targets() if target is not None]
        for step in journey.steps
    }


def _reachable(journey: Journey) -> set[str]:
    edges = step_edges(journey)
    seen: set[str] = set()
    pending = [journey.steps[0].key]
    while pending:
        key = pending.pop()
        if key in seen or key not in edges:
            continue
        seen.add(key)
        pending.extend(target for _, target in edges[key])
    return seen


def find_cycle(journey: Journey) -> list[str] | None:
    """The first loop among the steps (keys, first repeated at the end), or None."""
    edges = {k: [t for _, t in v] for k, v in step_edges(journey).items()}
    return next(cycles(edges), None)


def _check_condition(checker: _Checker, node: Any, loc: Loc, *, entry: bool) -> None:
    audiences = {a.key for a in checker.ws.audiences} | set(checker.known.audiences)
    traits = checker.user_traits()
    for at, child in walk_journey_condition(node, loc):
        if isinstance(child, TraitCondition) and child.trait not in traits:
            checker.add((*at, "trait"), f"unknown trait '{child.trait}'")
        elif isinstance(child, AudienceCondition) and child.audience not in audiences:
            checker.add((*at, "audience"), f"unknown audience '{child.audience}'")
        elif isinstance(child, AudienceCondition):
            level = next((a.level for a in checker.ws.audiences if a.key == child.audience), "user")
            if level != "user":
                checker.add(
                    (*at, "audience"), f"journeys take people: '{child.audience}' is an account audience"
                )
        elif isinstance(child, JourneyEventCondition) and entry and child.since is not None:
            checker.add((*at, "since"), "the entry condition cannot count events since entry or a step")


def _check_journey(checker: _Checker, journey: Journey, i: int) -> None:
    base: Loc = ("journeys", i)
    _check_condition(checker, journey.entry, (*base, "entry"), entry=True)
    if journey.exit is not None:
        _check_condition(checker, journey.exit, (*base, "exit"), entry=False)
    first: dict[str, int] = {}
    for k, step in enumerate(journey.steps):
        if step.key in first:
            checker.add(
                (*base, "steps", k, "key"),
                f"step key '{step.key}' is already used by steps[{first[step.key]}]",
            )
        else:
            first[step.key] = k
    for k, step in enumerate(journey.steps):
        loc: Loc = (*base, "steps", k)
        for where, target in step_edges(journey)[step.key]:
            if target not in first:
                checker.add((*loc, *where), f"unknown step '{target}'; steps: {', '.join(first)}")
        if hasattr(step, "condition"):
            _check_condition(checker, step.condition, (*loc, "condition"), entry=False)
        if hasattr(step, "branches"):
            for b, branch in enumerate(step.branches):
                _check_condition(checker, branch.when, (*loc, "branches", b, "when"), entry=False)
        if isinstance(step, SendStep):
            seen: dict[str, int] = {}
            for d, dest in enumerate(step.destinations):
                at: Loc = (*loc, "destinations", d)
                if dest.destination in seen:
                    checker.add(
                        (*at, "destination"),
                        f"destination '{dest.destination}' is already a target of this step (destinations[{seen[dest.destination]}])",
                    )
                    continue
                seen[dest.destination] = d
                checker.check_target(dest.connection(journey.key, step.key), at)
    reachable = _reachable(journey)
    for k, step in enumerate(journey.steps):
        if step.key not in reachable and first.get(step.key) == k:
            checker.add(
                (*base, "steps", k),
                f"step '{step.key}' is unreachable: no path from the first step '{journey.steps[0].key}' leads to it",
            )
    cycle = find_cycle(journey)
    if cycle is not None:
        checker.add((*base, "steps", first[cycle[0]]), "steps lead back to themselves: " + " -> ".join(cycle))


def check_journeys(checker: _Checker) -> None:
    """Every cross-reference problem of the workspace's journeys."""
    first: dict[str, int] = {}
    for i, journey in enumerate(checker.ws.journeys):
        if journey.key in first:
            checker.add(
                ("journeys", i, "key"),
                f"journey key '{journey.key}' is already used by journeys[{first[journey.key]}]",
            )
        else:
            first[journey.key] = i
        _check_journey(checker, journey, i)
