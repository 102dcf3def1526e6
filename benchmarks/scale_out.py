"""Scale-out: `forwarder run` as one and as two processes on one SQS queue with Redis state,
and what Redis costs: round trips per record and per object, memory per thousand sessions.

    python benchmarks/scale_out.py [--copies 10] [--concurrency 8]

Input: enrich_throughput.py's records (the public invictus records repeated COPIES times with
fresh eventIDs and access keys), uploaded to moto server as delivered (~53 records an object),
one notification per object, ten to a message. Each run gets a fresh queue and key prefix;
the forwarders, moto and redis-server share this machine's cores unpinned, as processes on one
host would. Records/s is documents over the wall time from the first process's start to its
last document. Round trips are counted inside each forwarder (every request redis-py sends:
a pipeline is one), then divided by the records read and the objects read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_sqs import Moto, _cpu_seconds, _free_port, _lines  # noqa: E402 - the daemon benchmark's moto and helpers
from enrich_throughput import DATA, build  # noqa: E402 - the same records as the batch benchmark

REPO = Path(__file__).resolve().parents[1]

# The forwarder's CLI in this process, counting what redis-py sends (one request a command, one
# a pipeline) and the records and objects read; written to BENCH_OUT at exit.
COUNTED = """
import os, sys
import orjson, redis.connection
import forwarder.cli, forwarder.pipeline

counts = {"round_trips": 0, "records": 0, "objects": 0}
send = redis.connection.Connection.send_packed_command

def counted_send(self, command, check_health=True):
    counts["round_trips"] += 1
    return send(self, command, check_health)

process = forwarder.pipeline.Pipeline.process

def counted_process(self, *args, **kwargs):
    outcome = process(self, *args, **kwargs)
    counts["records"] += outcome.records
    counts["objects"] += 1
    return outcome

redis.connection.Connection.send_packed_command = counted_send
forwarder.pipeline.Pipeline.process = counted_process
code = forwarder.cli.main(sys.argv[1:])
with open(os.environ["BENCH_OUT"], "wb") as out:
    out.write(orjson.dumps(counts))
sys.exit(code)
"""


class Redis:
    def __init__(self, scratch: Path) -> None:
        self.port = _free_port()
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(scratch)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)

    def memory(self, prefix: str) -> dict[str, float]:
        """Bytes per entry of what scale-out keeps: sessions, callers, the duplicate window."""
        figures: dict[str, float] = {}
        for kind in ("session", "caller", "usage"):
            key = f"{prefix}kv:{kind}"
            entries = self.client.hlen(key)
            if entries:
                used = (self.client.memory_usage(key, samples=0) or 0) + (
                    self.client.memory_usage(f"{prefix}exp:{kind}", samples=0) or 0)
                figures[f"{kind} bytes"] = used / entries
                figures[f"{kind} entries"] = entries
        seen = list(self.client.scan_iter(match=f"{prefix}seen:*"))
        marks = sum(self.client.zcard(key) for key in seen)
        if marks:
            figures["duplicate-window bytes per eventID"] = sum(self.client.memory_usage(k, samples=0) or 0 for k in seen) / marks
        return figures

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def run(moto: Moto, store: Redis, keys: list[str], processes: int, concurrency: int, scratch: Path) -> dict[str, float]:
    moto.queues += 1
    queue = moto.sqs.create_queue(QueueName=f"scale-{moto.queues}")["QueueUrl"]
    for start in range(0, len(keys), 10):
        moto.sqs.send_message(QueueUrl=queue, MessageBody=orjson.dumps({"Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
             "s3": {"bucket": {"name": moto.bucket}, "object": {"key": key}}} for key in keys[start:start + 10]]}).decode())
    prefix = f"scale{moto.queues}:"
    started: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    begin = time.perf_counter()
    for number in range(processes):
        run_dir = scratch / f"run-{moto.queues}-{number}"
        run_dir.mkdir()
        config = run_dir / "run.yaml"
        config.write_text(yaml.safe_dump({
            "source": {"type": "sqs", "queue_url": queue, "wait_time_seconds": 1, "concurrency": concurrency},
            "state": {"type": "redis", "url": store.url, "key_prefix": prefix},
            "sinks": [{"type": "ndjson", "path": str(run_dir / "out.ndjson")}],
            "dead_letter": {"path": str(run_dir / "dead")},
            "metrics": {"listen": None},
            "logging": {"level": "WARNING"},
        }))
        counts = run_dir / "counts.json"
        process = subprocess.Popen([sys.executable, "-c", COUNTED, "run", "--config", str(config), "--exit-when-idle", "3"],
                                   cwd=REPO, env=dict(moto.env, BENCH_OUT=str(counts)), stdout=subprocess.DEVNULL)
        started.append((process, run_dir / "out.ndjson", counts))
    last, seen = begin, 0
    moto_before = _cpu_seconds(moto.process.pid)
    cpu: dict[int, float] = {}
    while len(cpu) < len(started):
        for process, _, _ in started:
            if process.pid not in cpu:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    if os.waitstatus_to_exitcode(status) != 0:
                        sys.exit(f"a forwarder exited with {os.waitstatus_to_exitcode(status)}")
                    cpu[pid] = usage.ru_utime + usage.ru_stime
        now_seen = sum(_lines(output) for _, output, _ in started)
        if now_seen != seen:
            seen, last = now_seen, time.perf_counter()
        time.sleep(0.05)
    moto_cpu = _cpu_seconds(moto.process.pid) - moto_before
    totals = {"round_trips": 0, "records": 0, "objects": 0}
    for _, _, counts in started:
        for name, value in orjson.loads(counts.read_bytes()).items():
            totals[name] += value
    moto.sqs.delete_queue(QueueUrl=queue)
    return {"processes": processes, "documents": seen, "records": totals["records"], "objects": totals["objects"],
            "seconds": last - begin, "records/s": totals["records"] / (last - begin),
            "forwarder CPU s": sum(cpu.values()), "moto CPU s": moto_cpu,
            "round trips per record": totals["round_trips"] / totals["records"],
            "round trips per object": totals["round_trips"] / totals["objects"], **store.memory(prefix)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--processes", default="1,2")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} not found: set FORWARDER_SHARED to the shared folder")
    with tempfile.TemporaryDirectory() as temporary:
        scratch = Path(temporary)
        records = build(args.copies, scratch / "files")
        moto, store = Moto(scratch), Redis(scratch)
        try:
            keys = moto.upload(scratch / "files", "in")
            print(f"{records} records in {len(keys)} objects; {os.cpu_count()} cores")
            for processes in (int(n) for n in args.processes.split(",")):
                figures = run(moto, store, keys, processes, args.concurrency, scratch)
                print(" | ".join(f"{name} {value:,.2f}" if isinstance(value, float) else f"{name} {value:,}"
                                 for name, value in figures.items()))
        finally:
            moto.close()
            store.close()


if __name__ == "__main__":
    main()
