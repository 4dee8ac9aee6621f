"""Set aside what failed validation so the cross-reference rules can check the rest: every problem in one pass.

A workspace with structural problems cannot be built, and without one the cross-reference rules (unknown
audiences, platform rules, ...) would say nothing until the structure is fixed, so users would fix problems
in rounds. Instead, list items that fail (a bad audience, connection, destination, ...) are dropped, unknown
keys removed, bad optional keys dropped and bad required scalars given stand-ins, in a few rounds, until a
workspace can be built. The names of dropped items stay known (references to them are not errors), and
locations found on the pruned copy are mapped back to the file's own list positions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from activation_pipeline.config.rules import KnownKeys

Loc = tuple[str | int, ...]

ITEM_SECTIONS: dict[tuple[str, ...], str | None] = {
    ("traits", "custom"): None,
    ("traits", "account"): None,
    ("traits", "computed"): "key",
    ("traits", "sql"): "key",
    ("traits", "predictive"): "key",
    ("audiences",): "key",
    ("destinations",): "id",
    ("connections",): "source",
    ("journeys",): "key",
}
"""List sections whose items can be set aside one by one, with the field naming each item."""

_KNOWN_BUCKET = {"traits": "traits", "audiences": "audiences", "destinations": "destinations"}
_STAND_INS: dict[Loc, Any] = {("workspace",): "workspace", ("sources",): {"events": {"path": "events/"}}}
"""Values for required top-level keys that failed, so the rest of the file can still be checked."""
_ROUNDS = 6


@dataclass
class Pruned:
    """A pruned copy of the raw file, the names it dropped, and where its list items came from."""

    data: dict[str, Any]
    dropped: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in _KNOWN_BUCKET})
    origins: dict[tuple[str, ...], list[int]] = field(default_factory=dict)

    def known(self) -> KnownKeys:
        """The keys of dropped items, for the cross-reference rules."""
        return KnownKeys(**{name: frozenset(keys) for name, keys in self.dropped.items()})

    def original(self, loc: Loc) -> Loc:
        """A location on the pruned copy as a location in the file."""
        for section, origin in self.origins.items():
            size = len(section)
            position = loc[size] if loc[:size] == section and len(loc) > size else None
            if isinstance(position, int) and position < len(origin):
                return (*section, origin[position], *loc[size + 1 :])
        return loc


_DUPLICATE_WORDS = {("audiences",): "audience key", ("destinations",): "destination id"}


def duplicates_of_dropped(data: dict[str, Any], pruned: Pruned) -> list[tuple[Loc, str]]:
    """Keys used twice where one of the uses was set aside (the rules see only what was kept)."""
    found: list[tuple[Loc, str]] = []
    for section, words in _DUPLICATE_WORDS.items():
        items = _node(data, section)
        kept = set(pruned.origins.get(section, range(len(items) if isinstance(items, list) else 0)))
        first: dict[str, int] = {}
        for i, item in enumerate(items if isinstance(items, list) else []):
            name = item.get(ITEM_SECTIONS[section] or "") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name not in first:
                first[name] = i
            elif not (i in kept and first[name] in kept):  # both kept: the rules report it
                found.append(
                    (
                        (*section, i, ITEM_SECTIONS[section] or ""),
                        f"{words} '{name}' is already used by {section[-1]}[{first[name]}]",
                    )
                )
    return found


def _node(data: Any, loc: Loc) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _section_of(loc: Loc) -> tuple[str, ...] | None:
    for section in ITEM_SECTIONS:
        if loc[: len(section)] == section and len(loc) > len(section) and isinstance(loc[len(section)], int):
            return section
    return None


def _drop_items(pruned: Pruned, drops: dict[tuple[str, ...], set[int]]) -> None:
    for section, positions in drops.items():
        items = _node(pruned.data, section)
        if not isinstance(items, list):
            continue
        origin = pruned.origins.setdefault(section, list(range(len(items))))
        name_field = ITEM_SECTIONS[section]
        for position in sorted(positions, reverse=True):
            item = items[position]
            name = item.get(name_field) if name_field and isinstance(item, dict) else None
            bucket = _KNOWN_BUCKET.get(section[0])
            if isinstance(name, str) and bucket:
                pruned.dropped[bucket].add(name)
            if section == ("traits", "predictive") and isinstance(name, str):
                pruned.dropped["traits"].add(f"{name}_percentile")
            if section == ("traits", "sql") and isinstance(item, dict):
                pruned.dropped["traits"].update(c for c in item.get("columns") or [] if isinstance(c, str))
            del items[position]
            del origin[position]


def _fix_round(pruned: Pruned, problems: list[tuple[Loc, str]]) -> bool:
    """Set aside what each problem names; False when nothing could be changed."""
    drops: dict[tuple[str, ...], set[int]] = {}
    changed = False
    for loc, message in problems:
        section = _section_of(loc)
        if section is not None:
            drops.setdefault(section, set()).add(int(loc[len(section)]))
            continue
        parent = _node(pruned.data, loc[:-1])
        if loc in _STAND_INS and isinstance(parent, dict) and parent.get(loc[-1]) != _STAND_INS[loc]:
            parent[loc[-1]] = copy.deepcopy(_STAND_INS[loc])
            changed = True
        elif isinstance(parent, dict) and loc and loc[-1] in parent and message != "required key is missing":
            del parent[loc[-1]]  # an unknown or bad optional key: its default stands in
            changed = True
    _drop_items(pruned, drops)
    return changed or bool(drops)


def prune_until_valid(
    data: dict[str, Any],
    problems: list[tuple[Loc, str]],
    build: Callable[[Any], tuple[Any, list[tuple[Loc, str]]]],
) -> tuple[Any, Pruned]:
    """The workspace `build` makes once the failing parts are set aside (None if it never can), and how."""
    pruned = Pruned(copy.deepcopy(data))
    for _ in range(_ROUNDS):
        if not _fix_round(pruned, problems):
            break
        workspace, problems = build(pruned.data)
        if workspace is not None:
            return workspace, pruned
    return None, pruned
