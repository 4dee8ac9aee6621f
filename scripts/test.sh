#!/usr/bin/env bash
# Set up, then lint, type-check and run the whole test suite (PostgreSQL tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
