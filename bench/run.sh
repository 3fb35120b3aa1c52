#!/usr/bin/env bash
# The fast-path benchmark: installs what is missing (wrk among it, via scripts/setup.sh), builds the release binary,
# then runs bench/bench.py: wrk against every hello function and an inline-Lua ceiling in the same nginx, PSS of
# every process, start-to-ready. Writes bench/results/<date>.md and bench/RESULTS.md. About 5 minutes.
# Usage: bench/run.sh [--rounds N] [--seconds S] [--no-write]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec python3 bench/bench.py "$@"
