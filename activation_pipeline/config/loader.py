"""Load a workspace file: YAML with line numbers, typed validation, then cross-reference rules."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from activation_pipeline.config.inline_secrets import inline_secret_problems
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


MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_VALUES = 200_000
"""Values a workspace file may hold once YAML aliases are expanded (an alias bomb holds billions)."""
MAX_DEPTH = 64
_BRACKET_RUN = re.compile(r"[\[{](?:\s*[\[{]){" + str(MAX_DEPTH) + "}")


class _LineLoader(yaml.SafeLoader):
    """A safe YAML loader that reports duplicate keys instead of silently keeping the last one."""


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def _size_problem(root: yaml.Node) -> Problem | None:
    """Too many values once aliases are expanded, or too deep; counted without expanding (alias = same node)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        size[id(node)] = min(1 + sum(size.get(id(c), 0) for c in children), MAX_VALUES + 1)
        depth[id(node)] = 1 + max((depth.get(id(c), 0) for c in children), default=0)
        if depth[id(node)] > MAX_DEPTH:
            return Problem("", f"nested more than {MAX_DEPTH} levels deep", node.start_mark.line + 1)
    if size[id(root)] > MAX_VALUES:
        return Problem("", f"holds more than {MAX_VALUES:,} values once its YAML aliases are expanded")
    return None


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Loc, int], list[Problem]]:
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text)
        node = loader.get_single_node()
        if node is not None and (problem := _size_problem(node)) is not None:
            return None, {}, [problem]
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return None, {}, [Problem("", f"not valid YAML: {getattr(error, 'problem', error)}", line)]
    except RecursionError:
        return None, {}, [Problem("", f"nested more than {MAX_DEPTH} levels deep")]
    finally:
        if loader is not None:
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


_PLACEHOLDERS = {("workspace",): "workspace"}
"""Stand-ins for required scalars that failed validation, so the rest of the file can still be checked."""


def _without_bad_fields(data: dict[str, Any], remaining: list[tuple[Loc, str]]) -> dict[str, Any]:
    """A copy without keys reported unknown, and with placeholders for bad required scalars."""
    pruned = copy.deepcopy(data)
    for loc, message in remaining:
        parent: Any = pruned
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if not isinstance(parent, dict) or loc[-1] not in parent:
            continue
        if message.startswith("unknown key"):
            del parent[loc[-1]]
        elif loc in _PLACEHOLDERS:
            parent[loc[-1]] = _PLACEHOLDERS[loc]
    return pruned


def validate_text(
    text: str, source: str = "<workspace>", base_dir: Path | None = None
) -> tuple[Workspace | None, list[Problem]]:
    """Validate a workspace file's text; return the workspace (None if invalid) and every problem found."""
    if len(text) > MAX_FILE_BYTES:
        return None, [Problem("", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: not a workspace file")]
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        return None, [
            Problem("", "contains a NUL character: a workspace file is text (is this a binary file?)", line)
        ]
    if _BRACKET_RUN.search(text):  # PyYAML's scanner is slow on such runs: refuse before parsing
        return None, [Problem("", f"nested more than {MAX_DEPTH} levels deep")]
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
        # Drop what failed (bad list items, unknown keys, a bad name) so the cross-reference rules can still
        # check the rest: every problem is listed in one pass, not one per fix.
        pruned, known = _without_bad_items(data, [loc for loc, _ in structural])
        workspace, remaining = _structure_problems(_without_bad_fields(pruned, remaining=structural))
        if workspace is None:
            workspace, _ = _structure_problems(_without_bad_fields(pruned, remaining=remaining))
    cross: list[tuple[Loc, str]] = []
    if workspace is not None:
        workspace.with_base_dir(base_dir or Path.cwd())
        cross = check_workspace(workspace, known)
    for loc, message in [*structural, *cross, *inline_secret_problems(data)]:
        problems.append(Problem(format_path(loc), message, _line_for(loc, lines)))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    return (workspace if not problems else None), problems


def validate_file(path: str | os.PathLike[str]) -> tuple[Workspace | None, list[Problem]]:
    """Validate a workspace file on disk."""
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)  # a huge file is refused without reading it whole
    except OSError as error:
        return None, [Problem("", f"cannot read {file}: {error.strerror or error}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start]
        return None, [Problem("", f"not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8", line)]
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
