"""The README's configuration reference names every key the models accept, so it cannot drift."""

import re
from pathlib import Path

from pydantic import BaseModel

from activation_pipeline.config.workspace import Workspace
from activation_pipeline.destinations.registry import CATALOGUE, DESTINATION_MODELS

README = re.sub(r"```.*?```", "", (Path(__file__).resolve().parents[2] / "README.md").read_text(), flags=re.S)
# Every word inside a `code span` of the README (keys are documented in code spans).
DOCUMENTED = {
    word for span in re.findall(r"`([^`]+)`", README) for word in re.findall(r"[A-Za-z_][\w.]*", span)
}
DOCUMENTED |= {part for word in DOCUMENTED for part in word.split(".")}


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> None:
    if model in seen:
        return
    seen.add(model)
    for field in model.model_fields.values():
        for candidate in _types_in(field.annotation):
            _models(candidate, seen)


def _types_in(annotation: object) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found.extend(_types_in(arg))
    for meta in getattr(annotation, "__metadata__", ()) or ():
        found.extend(_types_in(meta))
    if hasattr(annotation, "__origin__"):
        found.extend(_types_in(annotation.__origin__))
    return found


def test_every_configuration_key_is_documented() -> None:
    """Each field name (or alias) of each configuration model appears in backticks in the README."""
    models: set[type[BaseModel]] = set()
    _models(Workspace, models)
    for destination in DESTINATION_MODELS.values():
        _models(destination, models)
    for spec in CATALOGUE.values():
        _models(spec.connection_settings, models)
    missing = sorted(
        f"{model.__name__}.{field.alias or name}"
        for model in models
        for name, field in model.model_fields.items()
        if (field.alias or name) not in DOCUMENTED
    )
    assert not missing, f"undocumented configuration keys: {missing}"
