"""The Dagster code location: every workspace listed in `activation_pipeline/defs/`, one `defs.yaml` each."""

from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
