"""Load a workspace file: YAML with line numbers, typed validation, then cross-reference rules."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from activation_pipeline.config.problems import (
    Loc,
    Problem,
    WorkspaceInvalidError,
    clean_loc,
    describe_error,
    format_path,
)
from activation_pipeline.config.rules import KnownKeys, check_workspace
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.config.workspace import Workspace

# List sections whose items can be dropped one by one, with the field naming each item.
_ITEM_SECTIONS: dict[tuple[str, ...], str] = {
    ("traits", "computed"): "key",
    ("traits", "sql"): "key",
    ("audiences",): "key",
    ("destinations",): "id",
    ("connections",): "source",
}


class _LineLoader(yaml.SafeLoader):
    """A safe YAML loader that reports duplicate keys instead of silently keeping the last one."""


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int], list[Problem]]:
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, {}, [Problem("", f"not valid YAML: {getattr(error, 'problem', error)}", line)]
    finally:
        loader.dispose()
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _index_lines(node, (), lines, problems)
    return data, lines, problems


def _index_lines(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[Problem]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                problems.append(
                    Problem(
                        format_path((*loc, key)),
                        "key appears twice; the first would be silently lost",
                        key_node.start_mark.line + 1,
                    )
                )
            seen.add(key)
            _index_lines(value_node, (*loc, key), lines, problems)
            lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*loc, i), lines, problems)


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _structure_problems(data: Any) -> tuple[Workspace | None, list[tuple[Loc, str]]]:
    try:
        return Workspace.model_validate(data), []
    except ValidationError as error:
        seen: set[tuple[Loc, str]] = set()
        found = []
        for detail in error.errors():
            item = (clean_loc(detail["loc"]), describe_error(detail))
            if item not in seen:
                seen.add(item)
                found.append(item)
        return None, found


def _without_bad_items(data: dict[str, Any], bad: list[Loc]) -> tuple[dict[str, Any], KnownKeys]:
    """A copy of the raw file without list items that failed validation, and the keys those items named."""
    pruned: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    dropped: dict[str, set[str]] = {"traits": set(), "audiences": set(), "destinations": set()}
    for section, name_field in _ITEM_SECTIONS.items():
        parent: Any = pruned
        for part in section[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        items = parent.get(section[-1]) if isinstance(parent, dict) else None
        if not isinstance(items, list):
            continue
        bad_positions = {
            loc[len(section)] for loc in bad if loc[: len(section)] == section and len(loc) > len(section)
        }
        kept = []
        for i, item in enumerate(items):
            if i in bad_positions:
                name = item.get(name_field) if isinstance(item, dict) else None
                bucket = {"traits": "traits", "audiences": "audiences", "destinations": "destinations"}.get(
                    section[0]
                )
                if isinstance(name, str) and bucket:
                    dropped[bucket].add(name)
                if section == ("traits", "sql") and isinstance(item, dict):
                    dropped["traits"].update(c for c in item.get("columns") or [] if isinstance(c, str))
            else:
                kept.append(item)
        parent[section[-1]] = kept
    return pruned, KnownKeys(
        traits=frozenset(dropped["traits"]),
        audiences=frozenset(dropped["audiences"]),
        destinations=frozenset(dropped["destinations"]),
    )


def validate_text(
    text: str, source: str = "<workspace>", base_dir: Path | None = None
) -> tuple[Workspace | None, list[Problem]]:
    """Validate a workspace file's text; return the workspace (None if invalid) and every problem found."""
    data, lines, problems = _parse_yaml(text, source)
    if not isinstance(data, dict):
        if not problems:
            problems.append(
                Problem("", "a workspace file must be a YAML mapping (workspace:, sources:, ...)", 1)
            )
        return None, problems

    workspace, structural = _structure_problems(data)
    known = KnownKeys()
    if workspace is None:
        pruned, known = _without_bad_items(data, [loc for loc, _ in structural])
        workspace, _ = _structure_problems(pruned)
    cross: list[tuple[Loc, str]] = []
    if workspace is not None:
        workspace.with_base_dir(base_dir or Path.cwd())
        cross = check_workspace(workspace, known)
    for loc, message in [*structural, *cross]:
        problems.append(Problem(format_path(loc), message, _line_for(loc, lines)))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    return (workspace if not problems else None), problems


def validate_file(path: str | os.PathLike[str]) -> tuple[Workspace | None, list[Problem]]:
    """Validate a workspace file on disk."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        return None, [Problem("", f"cannot read {file}: {error.strerror or error}")]
    return validate_text(text, str(file), base_dir=file.resolve().parent)


def load_workspace(path: str | os.PathLike[str]) -> Workspace:
    """Load and validate a workspace file, raising WorkspaceInvalidError listing every problem."""
    workspace, problems = validate_file(path)
    if workspace is None:
        raise WorkspaceInvalidError(str(path), problems)
    return workspace


def _secret_refs(value: Any, loc: Loc) -> Iterator[tuple[Loc, SecretRef]]:
    if isinstance(value, SecretRef):
        yield loc, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field = type(value).model_fields[name]
            yield from _secret_refs(getattr(value, name), (*loc, field.alias or name))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_refs(item, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _secret_refs(item, (*loc, i))


def missing_environment(workspace: Workspace) -> list[Problem]:
    """Secret references whose environment variable is not set (names only, never values)."""
    return [
        Problem(format_path(loc), f"environment variable {ref.env} is not set")
        for loc, ref in _secret_refs(workspace, ())
        if not os.environ.get(ref.env)
    ]
