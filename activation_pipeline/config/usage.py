"""What a workspace refers to in its events: event names and the properties read from each."""

from __future__ import annotations

from activation_pipeline.config.models import EventCondition, PropertyFilter
from activation_pipeline.config.rules import walk_conditions
from activation_pipeline.config.workspace import Workspace


def referenced_events(workspace: Workspace) -> dict[str, list[str]]:
    """Event name -> sorted property names that computed traits and audience conditions read."""
    found: dict[str, set[str]] = {}

    def note(event: str, prop: str | None, filters: list[PropertyFilter]) -> None:
        props = found.setdefault(event, set())
        if prop:
            props.add(prop)
        props.update(f.property for f in filters)

    for trait in workspace.traits.computed:
        note(trait.event, getattr(trait, "property", None), trait.where)
    conditions = [a.where for a in workspace.audiences]
    for predictive in workspace.traits.predictive:
        goal = predictive.goal
        if goal.event is not None:
            note(goal.event, goal.property, goal.where)
        for event in predictive.features.events:
            note(event, None, [])
        if predictive.population is not None:
            conditions.append(predictive.population)
    for condition in conditions:
        for _, node in walk_conditions(condition):
            if isinstance(node, EventCondition):
                note(node.event, None, node.where)
    return {event: sorted(props) for event, props in sorted(found.items())}
