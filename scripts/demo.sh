#!/usr/bin/env bash
# Set up, generate the sample events, run the whole pipeline on embedded defaults, delivering to local fake servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
AS_OF="${AS_OF:-2026-11-01T00:00:00Z}"
.venv/bin/activation-pipeline validate data/sample/workspace.yml
.venv/bin/activation-pipeline generate data/sample/workspace.yml --end "$AS_OF"
.venv/bin/activation-pipeline run data/sample/workspace.yml --as-of "$AS_OF" --sandbox
