"""Configuration problems: where in the file, and a sentence a user understands."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from activation_pipeline.config.models import SLUG, SNAKE_KEY, TAG, TRAIT_PATH
from activation_pipeline.errors import ConfigurationError

Loc = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a workspace file."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form."""
        return asdict(self)


class WorkspaceInvalidError(ConfigurationError, ValueError):
    """A workspace file has problems; `problems` lists every one of them."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{source}: {len(self.problems)} problem(s) in the workspace configuration:\n{listing}"
        )


def clean_loc(loc: Iterable[str | int]) -> Loc:
    """Drop union tags and pydantic's internal markers from an error location."""
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part.startswith(TAG) or part.startswith("function-")))
    )


def format_path(loc: Iterable[str | int]) -> str:
    """`('connections', 2, 'id_sync', 3, 'strategy')` -> `connections[2].id_sync[3].strategy`."""
    text = ""
    for part in clean_loc(loc):
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


_PATTERN_WORDS = {
    SNAKE_KEY: "must be snake_case: a lowercase letter, then lowercase letters, digits or _",
    TRAIT_PATH: "must be a trait or property name (letters, digits, _; dots for nested values)",
    SLUG: "must be a lowercase name of letters, digits, _ or - (at most 63 characters)",
}


def describe_error(detail: Any) -> str:
    """A pydantic error detail as a sentence a user understands."""
    kind, message = detail["type"], str(detail["msg"])
    if kind == "extra_forbidden":
        return "unknown key (check its spelling and indentation)"
    if kind == "missing":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        pattern = detail.get("ctx", {}).get("pattern", "")
        return _PATTERN_WORDS.get(pattern, f"{detail.get('input')!r} has the wrong form (expected {pattern})")
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
