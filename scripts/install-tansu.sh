#!/usr/bin/env bash
# Installs Tansu 0.6.0, the Kafka-API broker the Kafka tests run against, unless a `tansu` that
# has what the tests need is already there ($HYGROFLOW_TANSU, PATH, ~/.cargo/bin). Prints
# where the binary is.
#
# The tests need two storage engines: in memory (`memory://tansu/`, the `dynostore` feature)
# and SQLite (`sqlite://tansu.db`, the `libsql` feature; the broker fault tests kill the broker
# and restart it on the same file). A tansu without either (the default features, or an
# earlier install with `dynostore` only) is reinstalled. Each engine is checked by starting the
# broker for a moment on it: `--version` says nothing about features.
#
# The build compiles 410 crates, libsql's bundled SQLite included: 23 minutes measured on 2
# cores shared with other builds. See shared/notes/kafka-broker.md.
#
# The tests use $HYGROFLOW_TANSU when it is set: then it must be such a tansu (nothing is
# installed).
set -euo pipefail

version=0.6.0
features=dynostore,libsql

# Starts `$1 broker` on storage URL `$2` in a scratch directory, on a port the kernel picks,
# and says whether it got ready within 20 s (a build without the URL's feature exits at once
# with FeatureNotEnabled).
starts_with() {
    local bin=$1 url=$2 dir pid ready=1
    dir=$(mktemp -d)
    (cd "$dir" && exec "$bin" broker --storage-engine "$url" \
        --listener-url tcp://127.0.0.1:0 --advertised-listener-url tcp://127.0.0.1:0 \
        >"$dir/log" 2>&1) &
    pid=$!
    for _ in $(seq 1 200); do
        if grep -q "ready in" "$dir/log" 2>/dev/null; then
            ready=0
            break
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$ready" -ne 0 ]; then
        echo "install-tansu.sh: $bin did not start on $url: $(tail -c 300 "$dir/log" | tr '\n' ' ')" >&2
    fi
    rm -rf "$dir"
    return "$ready"
}

# Whether `$1` is tansu $version with both storage engines.
works() {
    "$1" --version 2>/dev/null | grep -q " $version\$" &&
        starts_with "$1" memory://tansu/ &&
        starts_with "$1" sqlite://tansu.db
}

if [ -n "${HYGROFLOW_TANSU:-}" ]; then
    if [ -x "$HYGROFLOW_TANSU" ] && works "$HYGROFLOW_TANSU"; then
        echo "tansu is already installed: $HYGROFLOW_TANSU ($("$HYGROFLOW_TANSU" --version), storage: memory, sqlite)"
        exit 0
    fi
    echo "install-tansu.sh: HYGROFLOW_TANSU=$HYGROFLOW_TANSU is not tansu $version with features $features: unset it, or point it at one (cargo install tansu --version $version --locked --features $features --root DIR)" >&2
    exit 1
fi

for candidate in "$(command -v tansu 2>/dev/null || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        if works "$candidate"; then
            echo "tansu is already installed: $candidate ($("$candidate" --version), storage: memory, sqlite)"
            exit 0
        fi
        echo "install-tansu.sh: $candidate is not tansu $version with features $features" >&2
    fi
done

echo "installing tansu $version with features $features (this takes about 25 minutes)..." >&2
cargo install tansu --version "$version" --locked --features "$features" --force

bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if ! works "$bin"; then
    echo "install-tansu.sh: cargo install finished but $bin does not start on both storage engines" >&2
    exit 1
fi
echo "tansu installed: $bin ($("$bin" --version), storage: memory, sqlite)"
