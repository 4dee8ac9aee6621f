#!/usr/bin/env bash
# Set up, generate the sample events, run the whole pipeline on embedded defaults, delivering to local fake servers.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
AS_OF="${AS_OF:-2026-11-01T00:00:00Z}"
.venv/bin/activation-pipeline validate data/sample/workspace.yml
.venv/bin/activation-pipeline generate data/sample/workspace.yml --end "$AS_OF"
# The sample's cart_abandonment journey waits a day before it sends: an evaluation a day earlier lets people
# enter it, so the run below moves them through the wait and the split and delivers its send steps.
JOURNEY_START="${JOURNEY_START:-$(.venv/bin/python -c 'import sys, datetime as d; print((d.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00")) - d.timedelta(days=1)).isoformat())' "$AS_OF")}"
.venv/bin/activation-pipeline run data/sample/workspace.yml --as-of "$JOURNEY_START" --sandbox --no-sync
.venv/bin/activation-pipeline run data/sample/workspace.yml --as-of "$AS_OF" --sandbox
