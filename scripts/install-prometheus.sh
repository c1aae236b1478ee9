#!/usr/bin/env bash
# Installs Debian's `prometheus` package (prometheus + promtool) when promtool is missing.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "promtool is missing; run as root or: sudo apt-get install prometheus" >&2
  exit 1
fi
echo "installing prometheus (Debian package) for promtool..." >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v promtool >/dev/null
