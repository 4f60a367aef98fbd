#!/usr/bin/env bash
# The project's test command: installs what the tests need (the Tansu Kafka broker; Chromium
# and Prometheus for the live page's tests; once per machine), then runs every test of the
# workspace. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-tansu.sh
scripts/install-test-programs.sh
cargo test --workspace --locked "$@"
