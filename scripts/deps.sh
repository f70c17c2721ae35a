#!/usr/bin/env bash
# Installs what a fresh machine lacks for building and testing Peapod (Debian packages), once.
# Both quick-start commands call it; it is a no-op when everything is present.
set -euo pipefail
need=()
# openssl, ca-certificates: the API server's PKI. busybox-static, nginx-light: tests/images/build.sh builds the
# offline test images from them. docker-registry, skopeo, apache2-utils (htpasswd): the registry tests. runc: the OCI
# runtime the node's shims drive. nftables, iproute2: Pod networking (nft rules; tests inspect links with ip).
for pkg in openssl ca-certificates busybox-static nginx-light docker-registry skopeo apache2-utils runc nftables iproute2; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
command -v kubectl >/dev/null 2>&1 || need+=(kubectl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo (Rust stable) is required: https://rustup.rs" >&2; exit 1; }
