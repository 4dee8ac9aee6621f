"""The bundled sample workspace is valid and exercises what it is meant to show."""

from activation_pipeline.config import load_workspace, validate_file
from activation_pipeline.config.models import COMPUTED_TRAIT_TYPES, IdStrategy
from activation_pipeline.destinations.registry import CATALOGUE
from activation_pipeline.orchestration.workspace import SAMPLE_WORKSPACE


def test_sample_validates() -> None:
    """No problems in the sample."""
    workspace, problems = validate_file(SAMPLE_WORKSPACE)
    assert problems == [] and workspace is not None


def test_sample_covers_the_concepts() -> None:
    """Every computed trait kind, a SQL trait, 5+ audiences incl. account-level, every destination type and
    every connection setting appear."""
    ws = load_workspace(SAMPLE_WORKSPACE)
    assert {t.type for t in ws.traits.computed} == set(COMPUTED_TRAIT_TYPES)
    assert ws.traits.sql
    assert len(ws.audiences) >= 5 and any(a.level == "account" for a in ws.audiences)
    assert any(not a.historical for a in ws.audiences)
    assert {d.type for d in ws.destinations} == set(CATALOGUE)
    connections = ws.connections
    assert {c.setup for c in connections} == {"default", "customized"}
    assert any(c.send_track for c in connections) and any(c.send_identify for c in connections)
    assert any(c.send_mobile_ids for c in connections)
    assert any(c.trait_enrichment for c in connections)
    assert {s.strategy for c in connections for s in c.id_sync} == set(IdStrategy)
    assert any(c.source_kind == "trait" for c in connections)
    assert ws.journeys and any(s.type == "send" for j in ws.journeys for s in j.steps)
