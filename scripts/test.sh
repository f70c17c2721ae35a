#!/usr/bin/env bash
# Quick start, command 2: install what is missing and run every test (unit, store, and integration tests that
# start real servers and drive the real kubectl). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast "$@"
