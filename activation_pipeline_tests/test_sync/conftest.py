"""Fixtures of the sync suites: state stores on SQLite and PostgreSQL."""

from activation_pipeline_tests.test_delivery.workload import state_location, store

__all__ = ["state_location", "store"]
