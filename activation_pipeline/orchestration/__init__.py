"""The thin Dagster layer: the workspace component, its asset factories, resources and the headless runner.

`activation_pipeline/defs/` (autoloaded by `activation_pipeline.definitions`) says which workspaces the code
location serves, one `defs.yaml` each, and which resources they use; this package builds their definitions.
"""
