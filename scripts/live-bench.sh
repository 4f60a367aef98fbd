#!/usr/bin/env bash
# The cost of --http under load (gh-11): a replay of generated lines through stdin in event
# time (3 s epochs, one report per epoch), timed from the first byte written to the job's exit,
# without --http and with --http and N clients reading /api/events the whole time.
#
#   scripts/live-bench.sh [MESSAGES] [CLIENTS] [REPEAT]     (default 5000000 200 3)
#
# Needs a release build (cargo build --release) and python3 (the clients: one process, one
# socket each). Prints one line per run and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
messages=${1:-5000000}
clients=${2:-200}
repeat=${3:-3}
bin=target/release/hygroflow
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
"$bin" generate --count "$messages" --seed 1 --interval-ms 0.3 > "$dir/lines.jsonl"

cat > "$dir/clients.py" <<'PY'
import socket, sys, time, selectors
port, n = int(sys.argv[1]), int(sys.argv[2])
sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("connected", flush=True)
received, open_ = 0, n
while open_:
    for key, _ in sel.select(timeout=60):
        data = key.fileobj.recv(1 << 16)
        if not data:
            sel.unregister(key.fileobj)
            open_ -= 1
        received += len(data)
print(f"clients received {received / 1e6:.1f} MB", file=sys.stderr)
PY

run() { # $1: with or without
    local fifo="$dir/in.$RANDOM" port args=()
    mkfifo "$fifo"
    if [ "$1" = with ]; then
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        args=(--http "127.0.0.1:$port")
    fi
    "$bin" run -i "$fifo" --time event --epoch 3s --format json "${args[@]}" > /dev/null 2> "$dir/err" &
    local job=$!
    exec 3> "$fifo"
    local clients_pid=
    if [ "$1" = with ]; then
        until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; do sleep 0.05; done
        python3 "$dir/clients.py" "$port" "$clients" > "$dir/connected" 2> "$dir/clients.err" 3>&- &
        clients_pid=$!
        until grep -q connected "$dir/connected" 2>/dev/null; do sleep 0.05; done
    fi
    local start end
    start=$(date +%s.%N)
    cat "$dir/lines.jsonl" >&3
    exec 3>&-
    wait "$job"
    end=$(date +%s.%N)
    [ -n "$clients_pid" ] && wait "$clients_pid" && cat "$dir/clients.err" >&2
    rm -f "$fifo"
    python3 -c "print(f'{$messages / ($end - $start):.0f}')"
}

declare -a without with
for i in $(seq "$repeat"); do
    w=$(run without); echo "run $i without --http: $w messages/s"; without+=("$w")
    h=$(run with); echo "run $i with --http and $clients event-stream clients: $h messages/s"; with+=("$h")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw=$(median "${without[@]}"); mh=$(median "${with[@]}")
echo "median without --http: $mw messages/s; with --http and $clients clients: $mh messages/s ($(python3 -c "print(f'{($mh / $mw - 1) * 100:+.1f}')") %)"
