#!/usr/bin/env python3
"""Issue 23 point 5: time from start to consuming, against a Tansu broker of its own.

Creates an input topic of PARTITIONS partitions with a few readings and the three output
topics, then REPEAT times starts `hygroflow run` on them (live, 2 workers, --state-dir,
--dlq-topic, --results-topic, --alerts-topic: every start-up request the job makes) and
measures from the spawn of the process to (a) the log line of the last worker that starts
consuming, (b) the first report on stdout. Prints each start and the medians.

    scripts/startup-time.py [BINARY] [REPEAT] [PARTITIONS] [DELAY_MS]
        (default target/release/hygroflow 9 8 0; needs tansu, see scripts/install-tansu.sh)

DELAY_MS puts the broker behind a proxy that holds every chunk of bytes that long in each
direction (a round trip of twice that): a broker in another building or region.
"""
import os, shutil, threading, socket, statistics, subprocess, sys, tempfile, time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/hygroflow"
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 9
partitions = int(sys.argv[3]) if len(sys.argv) > 3 else 8
delay = (float(sys.argv[4]) if len(sys.argv) > 4 else 0.0) / 1000
workers = 2
tansu = os.environ.get("HYGROFLOW_TANSU") or shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")

work = tempfile.mkdtemp()
def free_port():
    sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
    return port


def delaying_proxy(listen, target, delay):
    """Forwards 127.0.0.1:listen to 127.0.0.1:target, each chunk `delay` seconds late, in order."""
    import asyncio

    async def pipe(reader, writer):
        queue = asyncio.Queue()

        async def send():
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                if not data:
                    writer.close(); return
                writer.write(data); await writer.drain()

        sender = asyncio.ensure_future(send())
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                break
        await sender

    async def serve(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close(); return
        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer),
                             return_exceptions=True)

    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", listen)
        await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()


port = free_port()
listen = port
if delay > 0:
    listen = free_port()
    delaying_proxy(port, listen, delay)
brokers = f"127.0.0.1:{port}"
broker = subprocess.Popen([tansu, "broker", "--storage-engine", "memory://tansu/",
                           "--listener-url", f"tcp://127.0.0.1:{listen}", "--advertised-listener-url", f"tcp://{brokers}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
try:
    deadline = time.time() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", listen), 0.2).close(); break
        except OSError:
            if time.time() > deadline: sys.exit("tansu did not start")
            time.sleep(0.1)
    run = lambda *a: subprocess.run([binary, *a], check=True, stdout=subprocess.DEVNULL)
    run("topic", "create", "-b", brokers, "-t", "in", "--partitions", str(partitions))
    for t in ("dlq", "results", "alerts"):
        run("topic", "create", "-b", brokers, "-t", t)
    lines = os.path.join(work, "in.jsonl")
    with open(lines, "w") as f:
        subprocess.run([binary, "generate", "--count", "1000", "--seed", "1"], check=True, stdout=f)
    run("produce", "-b", brokers, "-t", "in", lines)
    to_consuming, to_report = [], []
    for i in range(repeat):
        state = os.path.join(work, f"state{i}")
        args = [binary, "run", "-b", brokers, "-t", "in", "-w", str(workers), "--epoch", "100ms",
                "--format", "json", "--state-dir", state, "--group", f"g{i}", "--http", "off",
                "--dlq-topic", "dlq", "--results-topic", "results", "--alerts-topic", "alerts"]
        started = time.monotonic()
        job = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "RUST_LOG": "info", "NO_COLOR": "1"})
        consuming = []

        def watch_log():
            seen = 0
            for line in job.stderr:
                if b"consuming partitions" in line:
                    seen += 1
                    if seen == workers:
                        consuming.append(time.monotonic() - started)

        watcher = threading.Thread(target=watch_log, daemon=True)
        watcher.start()
        report = None
        for line in job.stdout:
            if line.startswith(b"{"):
                report = time.monotonic() - started
                break
        if report is None or not consuming:
            sys.exit(f"start {i + 1}: no report, or not every worker consuming")
        consuming = consuming[0]
        job.terminate(); job.wait()
        to_consuming.append(consuming); to_report.append(report)
        print(f"start {i + 1}: consuming after {consuming * 1000:.0f} ms, first report after {report * 1000:.0f} ms")
    print(f"median of {repeat}: consuming after {statistics.median(to_consuming) * 1000:.0f} ms "
          f"(range {min(to_consuming) * 1000:.0f}-{max(to_consuming) * 1000:.0f}), first report after "
          f"{statistics.median(to_report) * 1000:.0f} ms ({min(to_report) * 1000:.0f}-{max(to_report) * 1000:.0f})")
finally:
    broker.terminate(); broker.wait()
    shutil.rmtree(work, ignore_errors=True)
