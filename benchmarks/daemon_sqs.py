"""The daemon's own CPU per record (`forwarder run`, SQS source, NDJSON sink, against moto
server) next to the batch path's (`forwarder enrich`) on the same objects, for several object
sizes: the daemon's overhead over the batch path is a fixed cost per object (requests to S3
and SQS), so it is measured where it matters, on objects of the size busy accounts deliver.

    python benchmarks/daemon_sqs.py [--copies 10] [--merged-copies 40] [--sizes delivered,500,2000] [--runs 5]

Inputs, all from enrich_throughput.py's records (the public invictus records repeated with
fresh eventIDs and access keys):
- ``delivered``: COPIES copies, in the files as the public trail delivered them (~53 records
  each);
- ``500``, ``2000``: MERGED_COPIES copies, in order, merged into objects of that many records
  (CloudTrail writes a file per account and region every ~5 minutes: hundreds to a few
  thousand records for a busy account). More copies here, so that a handful of large objects
  still make enough work to time; moto slows down with many messages, so small objects get
  fewer.

moto runs as its own process on core 1; each forwarder run is its own process on core 0.
The CPU measured is that of the work loop (``Daemon.run``, ``run_files``), read inside the
process, so start-up (imports, boto3 clients) is left out of both paths; the daemon's idle
tail (``--exit-when-idle``) is taken off by an equal run on an empty queue. The two paths run
alternately and each figure is the least of its runs: on this shared virtual machine a run
now and then takes up to 1.8x the CPU for the same work, and interference only ever adds.
Wall-clock rates are printed too, but they measure moto (its CPU is printed next to them),
not the forwarder. For the delivered objects it also prints the floor: the CPU of a plain
kept-alive HTTP GET of each object, the least any daemon pays to fetch it.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enrich_throughput import DATA, build  # noqa: E402 - the same records as the batch benchmark

REPO = Path(__file__).resolve().parents[1]
FORWARDER_CORE, MOTO_CORE = 0, 1
IDLE_SECONDS = 2.0

# Runs the forwarder's own CLI in this process and writes the CPU seconds (all threads) spent
# in its work loop to the file named by BENCH_CPU_OUT; start-up stays outside the timing.
TIMED = """
import os, sys, time
import forwarder.batch, forwarder.cli, forwarder.daemon

spent = []

def timed(function):
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.process_time() - start)
    return wrapper

forwarder.daemon.Daemon.run = timed(forwarder.daemon.Daemon.run)
forwarder.batch.run_files = timed(forwarder.batch.run_files)
code = forwarder.cli.main(sys.argv[1:])
with open(os.environ["BENCH_CPU_OUT"], "w") as out:
    out.write(repr(sum(spent)))
sys.exit(code)
"""


@dataclass(slots=True)
class Run:
    loop_cpu: float  # seconds in the work loop
    process_cpu: float  # the whole process, start-up included
    documents: int
    seconds: float  # wall, first to last document (daemon) or the whole run (batch)


def _pin(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def merge(source: Path, size: int, target: Path) -> int:
    """The records under ``source``, in order, rewritten as objects of ``size`` records."""
    records: list[Any] = []
    for path in sorted(source.rglob("*.json.gz")):
        records.extend(json.loads(gzip.decompress(path.read_bytes()))["Records"])
    out = target / "AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/10"
    out.mkdir(parents=True, exist_ok=True)
    for number, start in enumerate(range(0, len(records), size)):
        body = json.dumps({"Records": records[start:start + size]}, separators=(",", ":")).encode()
        (out / f"merged{size}-{number:05d}.json.gz").write_bytes(gzip.compress(body, 6))
    return len(records)


def timed_forwarder(arguments: list[str], env: dict[str, str], stdout: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], Path]:
    cpu_out = scratch / f"cpu-{time.monotonic_ns()}"
    with open(stdout, "wb") as out:
        process = subprocess.Popen(_pin(FORWARDER_CORE, [sys.executable, "-c", TIMED, *arguments]), cwd=REPO,
                                   env=dict(env, BENCH_CPU_OUT=str(cpu_out)), stdout=out)
    return process, cpu_out


def finish(process: subprocess.Popen[bytes], cpu_out: Path, tick: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Wait for a timed forwarder (calling ``tick`` meanwhile); its loop CPU and its
    whole-process CPU (from wait4)."""
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        tick()
        time.sleep(0.02)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"the forwarder exited with {process.returncode}")
    return float(cpu_out.read_text()), usage.ru_utime + usage.ru_stime


def batch_run(files: Path, env: dict[str, str], scratch: Path) -> Run:
    output = scratch / "batch.ndjson"
    start = time.perf_counter()
    process, cpu_out = timed_forwarder(["enrich", str(files)], env, output, scratch)
    loop, whole = finish(process, cpu_out)
    return Run(loop, whole, _lines(output), time.perf_counter() - start)


class Moto:
    """moto server on its own core, and the bucket and queue the daemon reads."""

    def __init__(self, scratch: Path) -> None:
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.env = dict(os.environ, AWS_ENDPOINT_URL=self.url, AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        os.environ.update(self.env)
        server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
        self.process = subprocess.Popen(_pin(MOTO_CORE, [server, "-H", "127.0.0.1", "-p", self.url.rsplit(":", 1)[1]]),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        self.scratch = scratch
        self.s3, self.sqs = boto3.client("s3"), boto3.client("sqs")
        self.bucket = "bench-trail"
        self.s3.create_bucket(Bucket=self.bucket)
        self.queues = 0

    def upload(self, files: Path, prefix: str) -> list[str]:
        keys = []
        for path in sorted(files.rglob("*.json.gz")):
            key = f"{prefix}/{path.relative_to(files)}"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
            keys.append(key)
        return keys

    def daemon_run(self, keys: list[str], concurrency: int) -> tuple[Run, float]:
        """One `forwarder run` over a fresh queue holding one notification per key; the run
        and moto's CPU seconds meanwhile."""
        self.queues += 1
        queue = self.sqs.create_queue(QueueName=f"bench-{self.queues}")["QueueUrl"]
        for start_at in range(0, len(keys), 10):
            self.sqs.send_message_batch(QueueUrl=queue, Entries=[
                {"Id": str(n), "MessageBody": orjson.dumps({"s3Bucket": self.bucket, "s3ObjectKey": [k]}).decode()}
                for n, k in enumerate(keys[start_at:start_at + 10])])
        run_dir = self.scratch / f"run-{self.queues}"
        run_dir.mkdir()
        output = run_dir / "out.ndjson"
        config = run_dir / "run.yaml"
        config.write_text(yaml.safe_dump({
            "source": {"type": "sqs", "queue_url": queue, "wait_time_seconds": 1, "concurrency": concurrency},
            "state": {"type": "sqlite", "path": str(run_dir / "state.db")},
            "sinks": [{"type": "ndjson", "path": str(output)}],
            "dead_letter": {"path": str(run_dir / "dead")},
            "metrics": {"listen": None},
            "logging": {"level": "WARNING"},
        }))
        moto_before = _cpu_seconds(self.process.pid)
        process, cpu_out = timed_forwarder(["run", "--config", str(config), "--exit-when-idle", str(IDLE_SECONDS)],
                                           self.env, run_dir / "stdout", run_dir)
        first = last = None
        count = 0

        def watch() -> None:
            nonlocal first, last, count
            now, seen = time.perf_counter(), _lines(output)
            if seen and first is None:
                first = now
            if seen != count:
                count, last = seen, now

        loop, whole = finish(process, cpu_out, watch)
        moto_cpu = _cpu_seconds(self.process.pid) - moto_before
        self.sqs.delete_queue(QueueUrl=queue)
        steady = (last - first) if first is not None and last is not None else 0.0
        return Run(loop, whole, _lines(output), steady), moto_cpu

    def request_costs(self, keys: list[str]) -> tuple[float, float]:
        """CPU ms of one GetObject and of one SQS call (receive 10, delete 10), with the
        forwarder's own client settings, measured alone on the forwarder's core."""
        from forwarder import aws

        os.sched_setaffinity(0, {FORWARDER_CORE})
        try:
            s3, sqs = aws.client("s3"), aws.client("sqs")
            for key in keys[:5]:
                s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            start = time.process_time()
            for key in keys:
                s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            get_ms = 1000 * (time.process_time() - start) / len(keys)
            queue = sqs.create_queue(QueueName="bench-requests")["QueueUrl"]
            calls, spent = 0, 0.0
            for _ in range(20):
                sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": str(n), "MessageBody": "{}"} for n in range(10)])
                start = time.process_time()
                got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
                if got:
                    sqs.delete_message_batch(QueueUrl=queue, Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)])
                    calls += 1
                calls += 1
                spent += time.process_time() - start
            sqs.delete_queue(QueueUrl=queue)
            return get_ms, 1000 * spent / calls
        finally:
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


# A file server that keeps connections open, as S3 does (moto closes each one).
FILE_SERVER = """
import http.server, pathlib, sys
root = pathlib.Path(sys.argv[1])

class Files(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms wait for an ACK

    def do_GET(self):
        body = (root / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Files).serve_forever()
"""


def http_floor(files: Path) -> float:
    """CPU ms of the least any daemon must do to fetch one of these objects: a plain GET on a
    kept-alive connection (http.client; no SDK, no signing, no queue), served from the other core."""
    port = _free_port()
    server = subprocess.Popen(_pin(MOTO_CORE, [sys.executable, "-c", FILE_SERVER, str(files), str(port)]))
    paths = ["/" + str(path.relative_to(files)) for path in sorted(files.rglob("*.json.gz"))]
    os.sched_setaffinity(0, {FORWARDER_CORE})
    try:
        for _ in range(100):
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                connection.request("GET", paths[0])
                connection.getresponse().read()
                break
            except OSError:
                time.sleep(0.1)
        start = time.process_time()
        for path in paths:
            connection.request("GET", path)
            connection.getresponse().read()
        return 1000 * (time.process_time() - start) / len(paths)
    finally:
        os.sched_setaffinity(0, {MOTO_CORE})
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10, help="copies of the 2,900 invictus records, as delivered")
    parser.add_argument("--merged-copies", type=int, default=40, help="copies of them for the merged sizes")
    parser.add_argument("--sizes", default="delivered,500,2000", help="object sizes in records, or 'delivered'")
    parser.add_argument("--runs", type=int, default=5, help="runs of each path per size; the least CPU is reported")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the public samples at {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        # The benchmark's own polling stays off the forwarder's core.
        os.sched_setaffinity(0, {MOTO_CORE})
        moto = Moto(scratch)
        try:
            delivered, merged_source = scratch / "delivered", scratch / "merged-source"
            counts = {"delivered": build(args.copies, delivered)}
            if any(size != "delivered" for size in args.sizes.split(",")):
                counts["merged"] = build(args.merged_copies, merged_source)
            (scratch / "empty").mkdir()
            idle = min((moto.daemon_run([], args.concurrency)[0] for _ in range(args.runs)), key=lambda r: r.loop_cpu)
            batch_idle = min((batch_run(scratch / "empty", moto.env, scratch) for _ in range(args.runs)), key=lambda r: r.loop_cpu)
            print(f"input: the invictus records, {args.copies} copies as delivered, {args.merged_copies} copies merged; "
                  f"concurrency {args.concurrency}; least CPU of {args.runs} runs; forwarder on core {FORWARDER_CORE}, "
                  f"moto on core {MOTO_CORE}")
            print(f"start-up CPU (excluded below): enrich {batch_idle.process_cpu:.2f} s, run {idle.process_cpu - idle.loop_cpu:.2f} s; "
                  f"run's idle tail ({IDLE_SECONDS:.0f} s, taken off) {1000 * idle.loop_cpu:.0f} ms")
            print(f"{'records':>7} {'objects':>7} {'rec/obj':>7} | {'batch us/rec':>12} {'daemon us/rec':>13} {'overhead':>8} | "
                  f"{'batch ms/obj':>12} {'daemon ms/obj':>13} {'fixed ms/obj':>12} | {'docs b/d':>11} | "
                  f"{'wall obj/s':>10} {'moto CPU s':>10}")
            uploaded: list[str] = []
            for size in args.sizes.split(","):
                files = delivered if size == "delivered" else scratch / f"merged-{size}"
                if size != "delivered":
                    merge(merged_source, int(size), files)
                records = counts["delivered" if size == "delivered" else "merged"]
                keys = moto.upload(files, size)
                uploaded.extend(keys)
                batch, daemon = [], []
                for _ in range(args.runs):  # alternately, so that a noisy spell hits both paths
                    batch.append(batch_run(files, moto.env, scratch))
                    daemon.append(moto.daemon_run(keys, args.concurrency))
                batch_cpu = min(r.loop_cpu for r in batch) - batch_idle.loop_cpu
                daemon_cpu = min(r.loop_cpu for r, _ in daemon) - idle.loop_cpu
                steady = statistics.median(r.seconds for r, _ in daemon)
                moto_cpu = statistics.median(m for _, m in daemon)
                objects = len(keys)
                print(
                    f"{records:7d} {objects:7d} {records / objects:7.0f} | {1e6 * batch_cpu / records:12.1f} {1e6 * daemon_cpu / records:13.1f} "
                    f"{100 * (daemon_cpu - batch_cpu) / batch_cpu:7.0f}% | {1e3 * batch_cpu / objects:12.2f} "
                    f"{1e3 * daemon_cpu / objects:13.2f} {1e3 * (daemon_cpu - batch_cpu) / objects:12.2f} | "
                    f"{batch[0].documents:5d}/{min(r.documents for r, _ in daemon):5d} | "
                    f"{(objects - 1) / steady if steady else float('nan'):10.0f} {moto_cpu:10.1f}", flush=True)
                if size == "delivered":
                    floor = min(http_floor(files) for _ in range(args.runs))
                    print(f"{'':23} the floor for any daemon: a plain kept-alive HTTP GET of each object costs {floor:.2f} ms "
                          f"of CPU, {100 * floor / (1e3 * batch_cpu / objects):.0f}% of the batch path's work on it", flush=True)
            get_ms, sqs_ms = moto.request_costs(uploaded[:200])
            print(f"boto3 client CPU alone, per request: GetObject {get_ms:.2f} ms, SQS call {sqs_ms:.2f} ms")
        finally:
            moto.close()


if __name__ == "__main__":
    main()
