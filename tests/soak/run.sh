#!/usr/bin/env bash
# The soak (issue 12): builds the release binary, then runs tests/soak/soak.py — mixed traffic over every runtime for
# --minutes N (default 10) with worker kills and hot-reload edits; fails on unexplained 5xx, RSS or fd growth, lost
# log lines. Not part of scripts/test.sh. Needs what scripts/setup.sh installs (nginx + Lua, the runtimes).
# Usage: tests/soak/run.sh [--minutes N] [other options of tests/soak/soak.py --help]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked
exec python3 tests/soak/soak.py "$@"
