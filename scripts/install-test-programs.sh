#!/usr/bin/env bash
# Installs the real programs the tests talk to, from Debian's packages, once per machine:
# headless Chromium (the DevTools protocol) and Prometheus for the live page (tests/live.rs),
# Alertmanager and amtool for notifications (tests/alertmanager.rs). Needs root (as on CI) when
# one is missing; does nothing when all are there.
set -euo pipefail
if command -v chromium >/dev/null && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-test-programs: chromium, prometheus or prometheus-alertmanager is missing; run as root, or: sudo apt-get install -y chromium prometheus prometheus-alertmanager" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium prometheus prometheus-alertmanager >/dev/null
