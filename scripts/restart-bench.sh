#!/usr/bin/env bash
# Issue 23 point 1: a restart's time to its first report, with a long history in the output
# topics against a short one. For each of two histories (BIG: 1,000,000 dead letters and
# 100,000 alert lines; SMALL: 1,000 and 100) it makes a state directory and its topics on a
# Tansu broker of its own, then REPEAT times: produces 1,000 new readings, restarts the job
# from a copy of that state directory (`run --until-end --state-dir`, built-in rules, all three
# output topics) and times from the start of the process to its first report on stdout.
#
#   scripts/restart-bench.sh [BIG_LETTERS] [BIG_ALERTS] [REPEAT]   (default 1000000 100000 5)
#
# The dead letters are sent by a real run over that many malformed lines; the alert lines are
# lines in the alert log's format, of epochs before the job's, produced into the alerts topic
# (a run raises a few dozen transitions a day, not 100,000 in a minute), before the run that
# writes the checkpoint, as a year of history would be. Needs a release build
# (cargo build --release), python3 and tansu (scripts/install-tansu.sh). Prints one line per
# restart and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
big_letters=${1:-1000000}
big_alerts=${2:-100000}
repeat=${3:-5}
bin=$PWD/target/release/hygroflow
tansu=${HYGROFLOW_TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(cd "$dir" && exec "$tansu" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    > "$dir/tansu.log" 2>&1) &
until grep -q "ready in" "$dir/tansu.log" 2>/dev/null; do sleep 0.1; done
brokers=127.0.0.1:$port
export RUST_LOG=warn

# $1: name, $2: dead letters, $3: alert lines. Leaves $dir/$1.state and the topics $1.*.
history() {
    local name=$1 letters=$2 alerts=$3
    for t in in dlq results alerts; do
        "$bin" topic create -b "$brokers" -t "$name.$t" --partitions 1 > /dev/null
    done
    "$bin" generate --count "$letters" --seed 1 --bad-fraction 1 > "$dir/bad.jsonl"
    "$bin" produce -b "$brokers" -t "$name.in" "$dir/bad.jsonl"
    python3 - "$alerts" > "$dir/alerts.jsonl" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    epoch = 100_000_000 + i
    print(json.dumps({"id": f"MRI{i % 50}/high//{epoch}", "epoch": epoch,
        "time": "2020-01-01T00:00:00Z", "device": f"MRI{i % 50}", "modality": "MRI",
        "kind": "high", "state": "raised", "value": 71.5, "limit": 70.0}))
PY
    "$bin" produce -b "$brokers" -t "$name.alerts" "$dir/alerts.jsonl"
    # The history is in the topics before the run whose checkpoint the restarts start from,
    # as it is for a monitor that has run for a year: that run reads it all back once.
    run_job "$name" > /dev/null
}

run_job() {
    local name=$1 state=${2:-$dir/$1.state}
    "$bin" run -b "$brokers" -t "$name.in" --until-end --format json --state-dir "$state" \
        --group "$name" --dlq-topic "$name.dlq" --results-topic "$name.results" \
        --alerts-topic "$name.alerts"
}

# Prints the seconds from the restart's start to its first report.
restart() {
    local name=$1 seed=$2 state=$dir/restart.state
    "$bin" generate --count 1000 --seed "$seed" > "$dir/new.jsonl"
    "$bin" produce -b "$brokers" -t "$name.in" "$dir/new.jsonl"
    rm -rf "$state"
    cp -r "$dir/$name.state" "$state"
    python3 - "$bin" "$brokers" "$name" "$state" <<'PY'
import subprocess, sys, time
bin, brokers, name, state = sys.argv[1:]
start = time.monotonic()
job = subprocess.Popen([bin, "run", "-b", brokers, "-t", f"{name}.in", "--until-end",
    "--format", "json", "--state-dir", state, "--group", f"{name}-restart",
    "--dlq-topic", f"{name}.dlq", "--results-topic", f"{name}.results",
    "--alerts-topic", f"{name}.alerts"], stdout=subprocess.PIPE)
job.stdout.readline()
first = time.monotonic() - start
job.stdout.read()
assert job.wait() == 0, "the restart failed"
print(f"{first:.3f}")
PY
}

history big "$big_letters" "$big_alerts"
history small 1000 100
declare -a big small
for i in $(seq 1 "$repeat"); do
    big+=("$(restart big $((100 + i)))")
    small+=("$(restart small $((200 + i)))")
    echo "restart $i: big history ${big[-1]} s, small history ${small[-1]} s to the first report"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
b=$(median "${big[@]}") s=$(median "${small[@]}")
echo "median: big $b s, small $s s, ratio $(python3 -c "print(f'{$b/$s:.2f}')")"
