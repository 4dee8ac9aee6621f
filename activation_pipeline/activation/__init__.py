"""Payload building: Segment-spec messages with Trait Enrichment and ID Sync, from plain input types."""
