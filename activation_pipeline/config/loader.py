"""Load a workspace file: YAML with line numbers, typed validation, then cross-reference rules."""

from __future__ import annotations

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
from activation_pipeline.config.pruning import duplicates_of_dropped, prune_until_valid
from activation_pipeline.config.rules import KnownKeys, check_workspace
from activation_pipeline.config.secrets import SecretRef
from activation_pipeline.config.workspace import Workspace

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
    pruned = None
    if workspace is None:
        workspace, pruned = prune_until_valid(data, structural, _structure_problems)
    cross: list[tuple[Loc, str]] = []
    if workspace is not None:
        workspace.with_base_dir(base_dir or Path.cwd())
        cross = check_workspace(workspace, pruned.known() if pruned else KnownKeys())
        if pruned is not None:
            cross = [(pruned.original(loc), message) for loc, message in cross]
    if pruned is not None:
        cross += duplicates_of_dropped(data, pruned)
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
