#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build Peapod, and run the server (embedded store) on
# https://127.0.0.1:6443 with its data in /var/lib/peapod. Extra arguments go to `peapod server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bin peapod
echo "When it says ready:  export KUBECONFIG=/var/lib/peapod/kubeconfig.yaml; kubectl get pods"
exec ./target/release/peapod server --data-dir /var/lib/peapod "$@"
