#!/usr/bin/env bash
# Writes the state directory of one released checkpoint format, for tests/upgrade.rs:
#
#   scripts/make-state-fixture.sh HYGROFLOW_BINARY VERSION
#
# HYGROFLOW_BINARY is a build of the release that writes format VERSION (a worktree of its
# commit, `cargo build`: version 1 at 228278e, version 2 at 3ad1496, version 3 from c034a3d
# to 509dbf1, version 4 from the commit that added the epoch log on). It starts a Tansu broker, produces tests/fixtures/upgrade/first.jsonl to the topic
# `upgrade`, runs the job to the end of it in event time with a state directory, and keeps the
# directory as tests/fixtures/upgrade/state-vVERSION. The test produces first.jsonl and
# rest.jsonl to a fresh broker (the same offsets: one message a line), resumes from a copy of
# the directory with this hygroflow, and checks its final report against an uninterrupted run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
version=$2
out=tests/fixtures/upgrade/state-v$version
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tansu broker --storage-engine memory://tansu/ \
  --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  >"$work/tansu.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1
tansu topic create --broker "tcp://127.0.0.1:$port" --partitions 1 upgrade
tansu topic create --broker "tcp://127.0.0.1:$port" --partitions 1 upgrade.dlq
"$bin" produce -b "127.0.0.1:$port" -t upgrade tests/fixtures/upgrade/first.jsonl
"$bin" run -b "127.0.0.1:$port" -t upgrade --time event --until-end --format json \
  --state-dir "$work/state" >"$work/report.jsonl"
rm -rf "$out"
cp -r "$work/state" "$out"
echo "wrote $out ($(find "$out" -type f | wc -l) files)"
