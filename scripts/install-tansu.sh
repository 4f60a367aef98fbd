#!/usr/bin/env bash
# Installs Tansu 0.6.0, the Kafka-API broker the Kafka tests run against, unless a working
# `tansu` is already on PATH or in ~/.cargo/bin. Prints where the binary is.
#
# The build compiles ~400 crates (about 20 minutes on 2 cores); `--features dynostore` is what
# makes the in-memory storage (`memory://tansu/`) the tests use available.
# See shared/notes/kafka-broker.md.
set -euo pipefail

version=0.6.0

works() {
    "$1" --version >/dev/null 2>&1
}

for candidate in "${HYGROFLOW_TANSU:-}" "$(command -v tansu 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && works "$candidate"; then
        echo "tansu is already installed: $candidate ($("$candidate" --version))"
        exit 0
    fi
done

echo "installing tansu $version (this takes about 20 minutes)..." >&2
cargo install tansu --version "$version" --locked --features dynostore

bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! works "$bin"; then
    echo "install-tansu.sh: cargo install finished but $bin does not run" >&2
    exit 1
fi
echo "tansu installed: $bin ($("$bin" --version))"
