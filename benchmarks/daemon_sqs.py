"""`forwarder run` with the SQS source into the NDJSON sink, against moto server, next to
`forwarder enrich` on the same files.

    python benchmarks/daemon_sqs.py [--copies 10] [--concurrency 8]

Input: enrich_throughput.py's files (the public invictus records, repeated with fresh ids),
uploaded to a moto S3 bucket, one CloudTrail SNS-shaped notification per object on a moto
queue. moto runs as its own process pinned to core 1, the forwarder pinned to core 0, so the
two are told apart: the forwarder's own CPU seconds are its share; moto's are the fake AWS.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enrich_throughput import DATA, build  # noqa: E402 - the same input as the batch benchmark

REPO = Path(__file__).resolve().parents[1]


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


def _queue_empty(sqs: object, queue: str) -> bool:
    attributes = sqs.get_queue_attributes(  # type: ignore[attr-defined]
        QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def _settled(path: Path) -> bool:
    before = _lines(path)
    time.sleep(1.0)
    return _lines(path) == before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the public samples at {DATA}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION="us-east-1")
    os.environ.update(env)
    moto_server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    moto = subprocess.Popen(_pin(1, [moto_server, "-H", "127.0.0.1", "-p", str(port)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            records = build(args.copies, root / "files")
            files = sorted((root / "files").rglob("*.json.gz"))

            # The batch path on the same files (default selection), pinned to the same core.
            enrich = subprocess.Popen(_pin(0, [sys.executable, "-m", "forwarder", "enrich", str(root / "files")]),
                                      cwd=REPO, stdout=subprocess.PIPE)
            start = time.perf_counter()
            out, _ = enrich.communicate()
            enrich_seconds = time.perf_counter() - start
            delivered = out.count(b"\n")

            s3, sqs = boto3.client("s3"), boto3.client("sqs")
            s3.create_bucket(Bucket="bench-trail")
            queue = sqs.create_queue(QueueName="bench")["QueueUrl"]
            keys = []
            for path in files:
                key = str(path.relative_to(root / "files"))
                s3.put_object(Bucket="bench-trail", Key=key, Body=path.read_bytes())
                keys.append(key)
            for start_at in range(0, len(keys), 10):
                sqs.send_message_batch(QueueUrl=queue, Entries=[
                    {"Id": str(n), "MessageBody": orjson.dumps({"s3Bucket": "bench-trail", "s3ObjectKey": [k]}).decode()}
                    for n, k in enumerate(keys[start_at:start_at + 10])])

            output = root / "out.ndjson"
            config = root / "run.yaml"
            config.write_text(yaml.safe_dump({
                "source": {"type": "sqs", "queue_url": queue, "wait_time_seconds": 1, "concurrency": args.concurrency},
                "state": {"type": "sqlite", "path": str(root / "state.db")},
                "sinks": [{"type": "ndjson", "path": str(output)}],
                "dead_letter": {"path": str(root / "dead")},
                "metrics": {"listen": None},
                "logging": {"level": "WARNING"},
            }))
            moto_cpu_before = _cpu_seconds(moto.pid)
            start = time.perf_counter()
            daemon = subprocess.Popen(_pin(0, [sys.executable, "-m", "forwarder", "run", "--config", str(config)]),
                                      cwd=REPO, env=env)
            first = None
            # Done when every document the batch path wrote is out, or when the queue is empty
            # and nothing more comes (a record still held back at the end stays in the store).
            while _lines(output) < delivered and not (_queue_empty(sqs, queue) and _settled(output)):
                if first is None and output.exists() and output.stat().st_size:
                    first = time.perf_counter()
                if daemon.poll() is not None:
                    sys.exit(f"the forwarder exited early ({daemon.returncode})")
                time.sleep(0.05)
            done = time.perf_counter()
            out_run = _lines(output)
            daemon_cpu = _cpu_seconds(daemon.pid)
            moto_cpu = _cpu_seconds(moto.pid) - moto_cpu_before
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(60)
        finally:
            moto.terminate()
            moto.wait(10)

    objects = len(files)
    run_seconds = done - start
    steady = done - (first or start)
    print(f"input: {objects} objects, {records} records; documents out: enrich {delivered}, run {out_run} "
          f"(default selection); concurrency {args.concurrency}")
    print(f"{'what':52} {'objects/s':>10} {'records/s':>10} {'seconds':>8}")
    for label, seconds in (("forwarder enrich (batch, local files)", enrich_seconds),
                           ("forwarder run, SQS+S3 on moto, start to last doc", run_seconds),
                           ("forwarder run, first doc to last doc", steady)):
        print(f"{label:52} {objects / seconds:10,.0f} {records / seconds:10,.0f} {seconds:8.2f}")
    print(f"forwarder CPU seconds {daemon_cpu:.2f} (start-up included); moto CPU seconds {moto_cpu:.2f}")
    print(f"forwarder CPU per object {1000 * daemon_cpu / objects:.2f} ms; enrich wall per object {1000 * enrich_seconds / objects:.2f} ms")


if __name__ == "__main__":
    main()
