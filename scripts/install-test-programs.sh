#!/usr/bin/env bash
# Installs the real programs the live page's tests talk to (tests/live.rs): headless Chromium
# (the DevTools protocol) and Prometheus, from Debian's packages, once per machine. Needs root
# (as on CI) when they are missing; does nothing when both are there.
set -euo pipefail
if command -v chromium >/dev/null && command -v prometheus >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-test-programs: chromium and prometheus are missing; run as root, or: sudo apt-get install -y chromium prometheus" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium prometheus >/dev/null
