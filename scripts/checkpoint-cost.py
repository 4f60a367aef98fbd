#!/usr/bin/env python3
"""Issue 23 point 3: what a checkpoint costs, against a Tansu broker of its own.

Generates COUNT readings of the demo fleet (every sensor every 10 s, with an excursion, a
silence and a drift, so that the built-in rules raise alerts), produces them to a topic of one
partition, and REPEAT times runs `hygroflow run --time event --until-end` over them, without
and with `--state-dir` (a checkpoint at every epoch, the default). For each run it prints the
wall time, the peak RSS and the bytes the process wrote to storage (getrusage's block
output, which counts what the fsyncs pushed to the disk), and for the runs with a state
directory the number of epochs closed (one checkpoint each) and the size of its files at the
end. Then the medians and, per checkpoint, the extra time and bytes.

    scripts/checkpoint-cost.py [BINARY] [REPEAT] [COUNT]
        (default target/release/hygroflow 3 882000: 70 minutes of the demo fleet;
         needs tansu, see scripts/install-tansu.sh)
"""
import os, shutil, socket, statistics, subprocess, sys, tempfile, time

binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/hygroflow"
repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
count = int(sys.argv[3]) if len(sys.argv) > 3 else 882000
tansu = os.environ.get("HYGROFLOW_TANSU") or shutil.which("tansu") or os.path.expanduser("~/.cargo/bin/tansu")

work = tempfile.mkdtemp()
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); port = sock.getsockname()[1]; sock.close()
url = f"tcp://127.0.0.1:{port}"
broker = subprocess.Popen(
    [tansu, "broker", "--storage-engine", "memory://tansu/", "--listener-url", url,
     "--advertised-listener-url", url],
    stdout=open(os.path.join(work, "tansu.log"), "w"), stderr=subprocess.STDOUT)
try:
    time.sleep(1)
    for topic in ["cost", "cost.dlq"]:
        subprocess.run([tansu, "topic", "create", "--broker", url, "--partitions", "1", topic],
                       check=True, stdout=subprocess.DEVNULL)
    readings = os.path.join(work, "readings.jsonl")
    with open(readings, "w") as out:
        subprocess.run([binary, "generate", "--count", str(count), "--seed", "3",
                        "--interval-ms", "4.7619", "--scenario",
                        "excursion@10m,silence@20m,drift@30m"], check=True, stdout=out)
    subprocess.run([binary, "produce", "-b", f"127.0.0.1:{port}", "-t", "cost", readings],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(i, state):
        args = [binary, "run", "-b", f"127.0.0.1:{port}", "-t", "cost", "--group", f"g{i}",
                "--time", "event", "--until-end", "--format", "json"]
        if state:
            args += ["--state-dir", state]
        reports = os.path.join(work, f"reports-{i}.jsonl")
        started = time.monotonic()
        with open(reports, "w") as out:
            job = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
            _, status, usage = os.wait4(job.pid, 0)
        wall = time.monotonic() - started
        assert os.waitstatus_to_exitcode(status) == 0, f"run {i} failed"
        epochs = sum(1 for _ in open(reports))
        size = 0
        if state:
            for root, _, files in os.walk(state):
                size += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return dict(wall=wall, rss=usage.ru_maxrss / 1024, written=usage.ru_oublock * 512,
                    epochs=epochs, size=size)

    runs = {False: [], True: []}
    for i in range(repeat):
        for with_state in (False, True):
            state = os.path.join(work, f"state-{i}") if with_state else None
            r = run(f"{i}{'s' if with_state else ''}", state)
            runs[with_state].append(r)
            print(f"{'with' if with_state else 'without'} --state-dir: {r['wall']:.2f} s, "
                  f"{r['rss']:.0f} MB peak RSS, {r['written'] / 1e6:.1f} MB written, "
                  f"{r['epochs']} epochs, state dir {r['size'] / 1e6:.2f} MB at the end",
                  flush=True)

    def median(with_state, key):
        return statistics.median(r[key] for r in runs[with_state])

    epochs = median(True, "epochs")
    extra_time = (median(True, "wall") - median(False, "wall")) / epochs
    extra_bytes = (median(True, "written") - median(False, "written")) / epochs
    print(f"medians: without {median(False, 'wall'):.2f} s / {median(False, 'rss'):.0f} MB, "
          f"with {median(True, 'wall'):.2f} s / {median(True, 'rss'):.0f} MB")
    print(f"per checkpoint ({epochs:.0f}): {extra_time * 1000:.2f} ms and "
          f"{extra_bytes / 1e3:.1f} kB written")
finally:
    broker.kill()
    shutil.rmtree(work, ignore_errors=True)
