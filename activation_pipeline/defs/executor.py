"""Runs execute their steps in the run's own process: the stages share one compute engine with one writer
(DuckDB), so they run one after another anyway, and a process per step only adds its start-up time."""

import dagster as dg


@dg.definitions
def executor() -> dg.Definitions:
    """The in-process executor for every job of the code location."""
    return dg.Definitions(executor=dg.in_process_executor)
