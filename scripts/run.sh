#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build Peapod, and run the server (embedded store) on
# https://127.0.0.1:6443 with its data in /var/lib/peapod. Extra arguments go to `peapod server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bin peapod
# The seed's images, built offline from Debian packages and loaded into the node's image store (no registry needed).
images=target/test-images
bash tests/images/build.sh "$images" >/dev/null
for img in busybox:1.35 nginx:1.21; do
  if ! ./target/release/peapod image --data-dir /var/lib/peapod inspect "$img" >/dev/null 2>&1; then
    ./target/release/peapod image --data-dir /var/lib/peapod load "$images/${img/:/-}.tar"
  fi
done
echo "When it says ready:  export KUBECONFIG=/var/lib/peapod/kubeconfig.yaml; kubectl get pods"
exec ./target/release/peapod server --data-dir /var/lib/peapod "$@"
