"""Synthetic, deterministic, messy e-commerce Segment events for tests, demos and benchmarks."""

from activation_pipeline.synthetic.generator import (
    GenerationSummary,
    GeneratorSpec,
    generate_lines,
    write_events,
)

__all__ = ["GenerationSummary", "GeneratorSpec", "generate_lines", "write_events"]
