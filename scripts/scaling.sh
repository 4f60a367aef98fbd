#!/usr/bin/env bash
# Scaling: runs `hygroflow bench` at 1, 2, 4, 8 and 16 workers (from a file and from the
# simulated fleet fed through stdin), then writes the speed-up table against 1 worker.
#
#   scripts/scaling.sh [OUT.md] [-- extra bench flags]
#
# Environment: WORKERS (default 1,2,4,8,16), MESSAGES (default 10000000), REPEAT (default 3),
# HYGROFLOW (a built binary to use; default: build the release binary and use it).
# The bench's own report goes to OUT.md.bench (the table's source); the table to OUT.md
# (default scaling.md). Run it on an idle machine with at least as many cores as workers.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-scaling.md}"
shift || true
[[ "${1:-}" == "--" ]] && shift
workers="${WORKERS:-1,2,4,8,16}"
messages="${MESSAGES:-10000000}"
repeat="${REPEAT:-3}"
bin="${HYGROFLOW:-}"
if [[ -z "$bin" ]]; then
    cargo build --release --locked --quiet
    bin=target/release/hygroflow
fi

"$bin" bench --messages "$messages" --workers "$workers" --sources memory,file \
    --repeat "$repeat" --paced-rate 0 "$@" > "$out.bench"

# The engine table's rows: | input | messages | sensors | workers | wall s | ... | messages/s | ...
python3 - "$out.bench" "$out" "$(nproc)" <<'PY'
import sys

bench, out, cores = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {}
for line in open(bench, encoding="utf-8"):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 7 or not cells[3].isdigit():
        continue
    source, workers, rate = cells[0], int(cells[3]), float(cells[6].replace(",", ""))
    rows.setdefault(source, {})[workers] = rate
if not rows:
    sys.exit(f"no engine rows in {bench}")
names = {"memory": "simulated fleet (stdin)", "file": "file"}
with open(out, "w", encoding="utf-8") as f:
    f.write(f"Speed-up against 1 worker ({cores} cores; bench report in {bench}):\n\n")
    f.write("| input | workers | messages/s | speed-up |\n|---|---:|---:|---:|\n")
    for source, by_workers in rows.items():
        base = by_workers.get(1)
        for workers in sorted(by_workers):
            rate = by_workers[workers]
            speedup = f"{rate / base:.2f}x" if base else "-"
            f.write(f"| {names.get(source, source)} | {workers} | {rate:,.0f} | {speedup} |\n")
print(open(out, encoding="utf-8").read(), end="")
PY
