"""One asset per journey, downstream of the audiences (and traits) its conditions use.

Each materialisation moves people through the journey as of the run's time and reports, per journey, how many
entered, exited and completed, how many are in the journey and in each step, and how many reached a send step
(`sent`), so the Dagster UI plots them over time. The send steps are delivered by the destinations' sync assets
(one partition per send target, `journey.<journey>.<step>.<destination>`).
"""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from activation_pipeline.config import Workspace
from activation_pipeline.config.journeys import (
    BranchStep,
    Journey,
    SendStep,
    SplitStep,
    walk_journey_condition,
)
from activation_pipeline.config.models import AudienceCondition, TraitCondition
from activation_pipeline.journeys.evaluate import JourneyResult, evaluate_journeys
from activation_pipeline.orchestration.compute_assets import audience_key, trait_key
from activation_pipeline.orchestration.resources import ComputeResource, StateStoreResource
from activation_pipeline.orchestration.runs import as_of_from_context, workspace_for_run
from activation_pipeline.orchestration.scope import Scope

JOURNEYS = "journeys"
KINDS = {"duckdb", "sql"}


def journey_key(scope: Scope, key: str) -> dg.AssetKey:
    """The asset key of a journey, e.g. `acme-shop/journeys/cart_abandonment`."""
    return scope.key(JOURNEYS, key)


def journey_conditions(journey: Journey) -> Iterator[object]:
    """Every condition node of a journey: entry, exit, splits and branches."""
    roots: list[object] = [journey.entry]
    if journey.exit is not None:
        roots.append(journey.exit)
    for step in journey.steps:
        if isinstance(step, SplitStep):
            roots.append(step.condition)
        elif isinstance(step, BranchStep):
            roots += [b.when for b in step.branches]
    for root in roots:
        for _, node in walk_journey_condition(root):
            yield node


def journey_deps(scope: Scope, workspace: Workspace, journey: Journey) -> list[dg.AssetKey]:
    """The audiences and computed traits a journey's conditions use (all audiences when it names none: a
    journey is evaluated after the audiences of the same time)."""
    audiences = {n.audience for n in journey_conditions(journey) if isinstance(n, AudienceCondition)}
    computed = {t.key for t in workspace.traits.computed}
    traits = {n.trait for n in journey_conditions(journey) if isinstance(n, TraitCondition)} & computed
    if not audiences:
        audiences = {a.key for a in workspace.audiences}
    keys = [audience_key(scope, a) for a in sorted(audiences)] + [trait_key(scope, t) for t in sorted(traits)]
    return [scope.key("workspace_config"), *keys]


def _description(journey: Journey) -> str:
    sends = [
        f"{s.key} -> {', '.join(d.destination for d in s.destinations)}"
        for s in journey.steps
        if isinstance(s, SendStep)
    ]
    text = journey.description or f"Journey `{journey.key}`: who is in which step as of the run's time."
    return f"{text} Steps: {', '.join(s.key for s in journey.steps)}. Sends: {'; '.join(sends) or 'none'}."


def _result(scope: Scope, result: JourneyResult, as_of: str) -> dg.MaterializeResult:
    metadata: dict[str, Any] = {**result.metadata(), "as_of": as_of}
    if result.skipped:
        metadata["skipped"] = result.skipped
    return dg.MaterializeResult(asset_key=journey_key(scope, result.key), metadata=metadata)


def build_journey_assets(scope: Scope, workspace: Workspace, path: str) -> list[dg.AssetsDefinition]:
    """The journeys of one workspace as one multi-asset (one spec per journey); none without journeys."""
    if not workspace.journeys:
        return []

    @dg.multi_asset(
        name=f"{scope.ident}__journeys",
        specs=[
            dg.AssetSpec(
                journey_key(scope, journey.key),
                deps=journey_deps(scope, workspace, journey),
                group_name=scope.group(JOURNEYS),
                kinds=KINDS,
                description=_description(journey),
            )
            for journey in workspace.journeys
        ],
    )
    def journeys(
        context: dg.AssetExecutionContext, state: StateStoreResource, compute: ComputeResource
    ) -> Iterator[dg.MaterializeResult]:
        """Move people through every journey as of the run's time; figures per journey and step."""
        as_of = as_of_from_context(context)
        ws = workspace_for_run(context, path, state)
        with compute.pipeline(ws) as pipeline:
            summary = evaluate_journeys(pipeline.engine, pipeline.workspace, as_of)
        for result in summary.journeys:
            yield _result(scope, result, as_of.isoformat())

    return [journeys]
