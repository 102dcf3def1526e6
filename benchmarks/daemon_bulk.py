"""The daemon end to end at full speed: SQS notifications in, every record (`select: all`) out
to a bulk endpoint, next to the floor of merely parsing the same files and to `forwarder enrich`.

    python benchmarks/daemon_bulk.py [--copies 20] [--sink elasticsearch|splunk_hec|both]

Input: the invictus records 20 times with fresh eventIDs and access keys (enrich_throughput.py),
~1,100 gzipped objects of ~53 records as delivered, uploaded to moto server, announced on one
SQS queue by S3 event notifications of ten objects a message. The forwarder runs pinned to core
0; moto and the sink's server to core 1. The Elasticsearch sink ships to
tests/servers/bulk_endpoint.py (accepts everything at once, answering as Elasticsearch does);
the HEC sink to tests/servers/hec_server.py (the tests' strict HEC, acknowledgements off).

Reported: records/s by wall (the first process start to the last document the server took) and
per CPU second of the forwarder's process (start-up included); bulk requests, documents per
request and bytes per document; and the forwarder's CPU per object split into fetch (the S3
request and body), read (inflate, split), enrich, ship (serialising and sending, in the
sinks' workers), commit (the SQLite state's), wait (an object's thread handing its documents
to the batching and waiting for their request) and the rest (SQS, start-up, the CRT's I/O
threads); the wall time of those stages per object (waits included) and of a request; the CPU
of each thread (by name, numbers as N), the garbage collector's (within those), and moto's CPU
over the run. Then the floor (gzip + orjson loads and
dumps of every record, no I/O) and `forwarder enrich` on the same files, start-up included,
and last each of the issue's aims against this run's own figures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_sqs import MOTO_CORE, Moto, _free_port, _pin  # noqa: E402
from enrich_throughput import DATA, FLOOR, build, installed_env  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FORWARDER_CORE = 0
IDLE_SECONDS = 2.0

# The forwarder's CLI in this process, with the CPU of each stage taken per thread (the object
# threads fetch, read and enrich; the sinks' workers ship), written to BENCH_OUT at exit.
STAGED = """
import os, re, sys, threading, time
import orjson
import forwarder.cli, forwarder.enrich.enricher, forwarder.pipeline, forwarder.sources.objects, forwarder.sinks.batching
import forwarder.state.sqlite

spent = {"handle": 0.0, "process": 0.0, "read": 0.0, "enrich": 0.0, "ship": 0.0, "commit": 0.0, "wait": 0.0,
         "collector": 0.0, "objects": 0, "records": 0}
walls = {}  # the same stages' wall seconds, summed over the threads
lock = threading.Lock()
threads = {}  # thread id -> (its name, numbers as N; its CPU seconds so far), read from /proc

def sample_threads():
    names = {str(t.native_id): re.sub("[0-9]+", "N", t.name) for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = re.sub("[0-9]+", "N", f.read().strip())
        except OSError:
            continue  # ended between the listing and the read
        name = names.get(tid) or threads.get(tid, (comm,))[0]
        threads[tid] = (name, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))

def sampling():
    while True:  # threads that end take their CPU with them: read often
        sample_threads()
        time.sleep(0.2)

threading.Thread(target=sampling, name="bench-sampler", daemon=True).start()

import gc
collecting = {}  # thread -> the CPU clock when its collection began

def collector(phase, info):
    if phase == "start":
        collecting[threading.get_ident()] = time.thread_time()
    else:
        spent["collector"] += time.thread_time() - collecting.pop(threading.get_ident(), time.thread_time())

gc.callbacks.append(collector)

def staged(owner, name, stage):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start, began = time.thread_time(), time.monotonic()
        result = original(*args, **kwargs)
        with lock:
            spent[stage] += time.thread_time() - start
            walls[stage] = walls.get(stage, 0.0) + time.monotonic() - began
            if stage == "process":
                spent["objects"] += 1
                spent["records"] += result.records
        return result
    setattr(owner, name, wrapper)

staged(forwarder.sources.objects.ObjectHandler, "handle", "handle")
staged(forwarder.pipeline.Pipeline, "process", "process")
staged(forwarder.pipeline, "read_object", "read")
staged(forwarder.enrich.enricher.Enricher, "enrich_records", "enrich")
staged(forwarder.sinks.batching.Batching, "_send", "ship")
staged(forwarder.state.sqlite.SqliteStore, "commit", "commit")
staged(forwarder.sinks.batching.Batching, "send", "wait")
code = forwarder.cli.main(sys.argv[1:])
sample_threads()
by_thread = {}
for name, cpu in threads.values():
    by_thread[name] = by_thread.get(name, 0.0) + cpu
with open(os.environ["BENCH_OUT"], "wb") as out:
    out.write(orjson.dumps(dict(spent, threads=by_thread, walls=walls)))
sys.exit(code)
"""


def _server(command: list[str], port: int, ready: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(_pin(MOTO_CORE, command), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # answering, if only to refuse
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{command[0]} did not start")


def _sink(kind: str, scratch: Path) -> tuple[dict[str, Any], subprocess.Popen[bytes], str | None]:
    port = _free_port()
    if kind == "elasticsearch":
        server = _server([sys.executable, "tests/servers/bulk_endpoint.py", "--port", str(port)], port, "/")
        return ({"type": "elasticsearch", "hosts": [f"http://127.0.0.1:{port}"], "check_templates": False},
                server, f"http://127.0.0.1:{port}/_bench")
    token = "0b6e4bd3-5a3c-4f1e-9d2a-7c8b9e0f1a2b"
    os.environ["BENCH_HEC_TOKEN"] = token
    server = _server([sys.executable, "-c", HEC, str(port), token], port, "/services/collector/health")
    return ({"type": "splunk_hec", "url": f"http://127.0.0.1:{port}", "token": {"env": "BENCH_HEC_TOKEN"}},
            server, None)


# The tests' HEC server as a process of its own, keeping counts instead of events.
HEC = """
import sys, json, time
sys.path.insert(0, "tests")
from servers.hec_server import HecServer, Token
server = HecServer([Token(sys.argv[2])], port=int(sys.argv[1]), keep_events=False)
server.start()
while True:
    time.sleep(3600)
"""


def daemon_run(moto: Moto, keys: list[str], kind: str, scratch: Path, concurrency: int) -> dict[str, float]:
    moto.queues += 1
    queue = moto.sqs.create_queue(QueueName=f"bulk-{moto.queues}")["QueueUrl"]
    for start in range(0, len(keys), 10):
        moto.sqs.send_message(QueueUrl=queue, MessageBody=orjson.dumps({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": moto.bucket}, "object": {"key": key}}} for key in keys[start:start + 10]]}).decode())
    sink, server, stats = _sink(kind, scratch)
    run_dir = scratch / f"run-{moto.queues}"
    run_dir.mkdir()
    config = run_dir / "run.yaml"
    config.write_text(yaml.safe_dump({
        "select": "all",
        "source": {"type": "sqs", "queue_url": queue, "wait_time_seconds": 1, "concurrency": concurrency},
        "state": {"type": "sqlite", "path": str(run_dir / "state.db")},
        "sinks": [sink],
        "dead_letter": {"path": str(run_dir / "dead")},
        "metrics": {"listen": None},
        "logging": {"level": "WARNING"},
    }))
    out = run_dir / "stages.json"
    moto_before = _cpu_seconds(moto.process.pid)
    begin = time.time()
    process = subprocess.Popen(_pin(FORWARDER_CORE, [sys.executable, "-c", STAGED, "run", "--config", str(config),
                                                     "--exit-when-idle", str(IDLE_SECONDS)]),
                               cwd=REPO, env=dict(installed_env(), **moto.env, BENCH_OUT=str(out)))
    _, status, usage = os.wait4(process.pid, 0)
    ended = time.time() - IDLE_SECONDS  # its idle tail, before --exit-when-idle let it go
    moto_cpu = _cpu_seconds(moto.process.pid) - moto_before
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("the forwarder failed")
    counts = orjson.loads(urllib.request.urlopen(stats, timeout=5).read()) if stats else None
    server.terminate()
    server.wait(10)
    moto.sqs.delete_queue(QueueUrl=queue)
    spent = orjson.loads(out.read_bytes())
    cpu = usage.ru_utime + usage.ru_stime
    objects = spent["objects"] or 1
    figures: dict[str, float] = {"cpu s": cpu, "moto's cpu s": moto_cpu, "objects": spent["objects"],
                                 "records": spent["records"]}
    if counts is not None:
        figures.update({"records/s wall": counts["documents"] / (counts["last"] - begin),
                        "records/s per CPU s": counts["documents"] / cpu, "documents": counts["documents"],
                        "bulk requests": counts["requests"], "documents per request": counts["documents"] / counts["requests"],
                        "bytes per document": counts["bytes"] / counts["documents"]})
    else:
        figures.update({"records/s wall": spent["records"] / (ended - begin), "records/s per CPU s": spent["records"] / cpu})
    fetch = spent["handle"] - spent["process"]
    stages = {"fetch": fetch, **{stage: spent[stage] for stage in ("read", "enrich", "ship", "commit", "wait")}}
    figures.update({f"{stage} ms/object": 1000 * value / objects for stage, value in stages.items()})
    figures["rest ms/object"] = 1000 * (cpu - sum(stages.values())) / objects
    # Where an object's time goes in its thread (waiting on S3, on its request, on the GIL included).
    walls = spent["walls"]
    figures.update({f"wall ms/object, {stage}": 1000 * value / objects for stage, value in {
        "fetch": walls["handle"] - walls["process"], **{stage: walls[stage] for stage in ("read", "enrich", "wait", "commit")},
        "all": walls["handle"]}.items()})
    if counts is not None:
        figures["wall ms/request, ship"] = 1000 * walls["ship"] / counts["requests"]
    figures["garbage collector's cpu s"] = spent["collector"]  # inside the stages and the rest
    figures.update({f"CPU s, threads {name}": value for name, value in sorted(spent["threads"].items(), key=lambda kv: -kv[1])
                    if value >= 0.01 and name != "bench-sampler"})
    return figures


def _cpu_seconds(pid: int) -> float:
    """A running process's CPU so far (user and system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_and_enrich(files: Path, records: int) -> dict[str, float]:
    start = time.perf_counter()
    subprocess.run(_pin(FORWARDER_CORE, [sys.executable, "-c", FLOOR, str(files)]), check=True, stdout=subprocess.DEVNULL)
    floor = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(_pin(FORWARDER_CORE, [sys.executable, "-m", "forwarder", "enrich", "--config", str(files.parent / "all.yaml"),
                                         str(files)]), check=True, stdout=subprocess.DEVNULL, cwd=REPO, env=installed_env())
    enrich = time.perf_counter() - start
    return {"floor records/s": records / floor, "enrich records/s (start-up included)": records / enrich}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--sink", default="both", choices=["elasticsearch", "splunk_hec", "both"])
    parser.add_argument("--concurrency", type=int, default=None, help="source.concurrency (default: the forwarder's)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: set FORWARDER_SHARED to the shared folder")
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        files = scratch / "files"
        records = build(args.copies, files)
        (scratch / "all.yaml").write_text("select: all\n")
        moto = Moto(scratch)
        try:
            keys = moto.upload(files, "in")
            print(f"{records:,} records in {len(keys):,} objects")
            concurrency = args.concurrency or 8
            runs = {}
            for kind in (["elasticsearch", "splunk_hec"] if args.sink == "both" else [args.sink]):
                runs[kind] = figures = daemon_run(moto, keys, kind, scratch, concurrency)
                print(f"{kind}: " + " | ".join(f"{k} {v:,.2f}" for k, v in figures.items()))
        finally:
            moto.close()
        ends = floor_and_enrich(files, records)
        print(" | ".join(f"{k} {v:,.0f}" for k, v in ends.items()))
        print(aims(runs, ends))


# The aims, as ratios within this one run.
WALL_AIM = 45_000
CPU_AIM = 3.0  # the daemon's CPU per record at most this many times the floor's


def aims(runs: dict[str, dict[str, float]], ends: dict[str, float]) -> str:
    floor = ends["floor records/s"]
    lines = []
    for kind, figures in runs.items():
        wall, per_cpu, moto = figures["records/s wall"], figures["records/s per CPU s"], figures["moto's cpu s"]
        lines.append(f"aims, {kind}: {wall:,.0f} records/s by wall, {wall / WALL_AIM:.2f} of {WALL_AIM:,} "
                     f"(moto alone allows {figures['records'] / moto:,.0f} on its core); its CPU {floor / per_cpu:.1f} "
                     f"times the floor's (aim {CPU_AIM:g})")
    enrich = ends["enrich records/s (start-up included)"]
    lines.append(f"aims, forwarder enrich: {enrich / floor:.2f} of the floor (aim 1)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
