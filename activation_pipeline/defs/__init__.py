"""The code location's definitions folder (autoloaded, `dg` style): one folder with a `defs.yaml` per workspace
served, and `resources.py` with the resources they share."""
