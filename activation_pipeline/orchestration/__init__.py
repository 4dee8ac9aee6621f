"""The thin Dagster layer: the workspace component, its asset factories, resources and the headless runner.

`activation_pipeline/defs/` (autoloaded by `activation_pipeline.definitions`) says which workspaces the code
location serves, one `defs.yaml` each, and which resources they use; this package builds their definitions.

Modules defining assets, ops, schedules or sensors do not use `from __future__ import annotations`: Dagster
reads the `context` parameter's annotation as a type, and refuses a string.
"""
