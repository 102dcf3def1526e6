"""Peak memory against the uncompressed size of one CloudTrail object, and with several objects
in work at once: what ``max_object_bytes`` and ``concurrency`` cost, to size the container and
Kubernetes memory limits.

    python benchmarks/object_memory.py [--sizes 1,16,64,256] [--shapes assumptions,sessions,calls,all,bomb]
                                       [--concurrency 8] [--concurrent-sizes 8,32]

Objects are gzip (as AWS delivers them) of compact ``{"Records": [...]}`` holding SIZE MiB of
records of one shape:
- ``assumptions``: every record an AssumeRole (each one selected, parsed, enriched and written,
  and each issues a session for the state store): the most memory a byte of input can cost;
- ``sessions``: API calls made with assumed-role credentials (a hundred calls a session), the
  bulk of a real trail, which the default selection ships enriched;
- ``calls``: API calls of IAM users, which the default selection skips after a peek;
- ``all``: the same calls with ``select: all`` (every record shipped, from its own bytes);
- ``bomb``: one record holding a single huge string (a gzip bomb: ~1000:1).

Part 1: ``forwarder enrich`` on one object, one process per object, SQLite state in a file as
the daemon keeps it. Part 2: the daemon's runtime (``build_runtime``, the boto3 clients of an
SQS source, the NDJSON sink) with CONCURRENCY distinct objects in work at once, each held at
the sink until all have arrived there, as behind a slow SIEM: the most the daemon can hold with
that many objects in work. Peak RSS is each child's ``ru_maxrss`` (``os.wait4``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
from isal import igzip

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from cloudtrail import assume, call, session_identity, user  # noqa: E402 - the tests' CloudTrail builders, not a copy

MIB = 1 << 20
T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
SHAPE_CONFIG = {"all": "select: all\n"}  # the others: the default selection


def _template(shape: str) -> tuple[list[bytes], list[bytes]]:
    """One record's compact JSON cut where its eventID and access key go, and which goes where."""
    alice = user("111111111111", "alice")
    if shape == "assumptions":
        record = assume(alice, "arn:aws:iam::222222222222:role/Deploy", T0, key="@KEY@")
    elif shape == "sessions":
        # Begun long before the hold-back window: shipped at once, enriched from sessionIssuer.
        record = call(session_identity("arn:aws:iam::222222222222:role/Deploy", "@KEY@", "2026-03-30T09:00:00Z"), T0)
    else:
        record = call(alice | {"accessKeyId": "@KEY@"}, T0, "GetObject")
    record["eventID"] = "@ID@"
    pieces = re.split(rb"@(ID|KEY)@", orjson.dumps(record))
    return pieces[::2], pieces[1::2]


def build(path: Path, shape: str, size_mib: int, tag: int) -> int:
    """Write the object; return its uncompressed size in bytes."""
    target = size_mib * MIB
    with igzip.open(path, "wb", compresslevel=1) as out:
        if shape == "bomb":
            head, tail = b'{"Records":[{"eventVersion":"1.08","padding":"', b'"}]}'
            out.write(head)
            block = b"A" * MIB
            written = len(head) + len(tail)
            while written + len(block) <= target:
                out.write(block)
                written += len(block)
            out.write(b"A" * (target - written) + tail)
            return target
        parts, holes = _template(shape)
        key = b"AKIA" if shape in ("calls", "all") else b"ASIA"  # IAM users' own keys; session keys
        calls_per_key = 100 if shape == "sessions" else 1
        out.write(b'{"Records":[')
        written, number, chunk = len(b'{"Records":[]}'), 0, []
        while True:
            fill = {b"ID": b"%02d-%012d" % (tag, number), b"KEY": key + b"%02d%014d" % (tag, number // calls_per_key)}
            record = b"".join((parts[0], fill[holes[0]], parts[1], fill[holes[1]], parts[2]))
            if written + len(record) + 1 > target:
                break
            chunk.append(record)
            written += len(record) + bool(number)
            number += 1
            if len(chunk) == 10_000:
                out.write((b"," if number > len(chunk) else b"") + b",".join(chunk))
                chunk = []
        out.write((b"," if chunk and number > len(chunk) else b"") + b",".join(chunk) + b"]}")
        return written


def peak_rss_mib(argv: list[str]) -> float:
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if child.returncode not in (0, 1):  # 1: a record dead-lettered (reported on stderr), not a crash
        raise SystemExit(f"{argv}: exit status {child.returncode}")
    return usage.ru_maxrss / 1024  # KiB on Linux


def single(work: Path, shape: str, size_mib: int) -> tuple[int, float]:
    obj = work / f"{shape}-{size_mib}.json.gz"
    size = build(obj, shape, size_mib, 0)
    config = work / f"{shape}.yaml"
    config.write_text(SHAPE_CONFIG.get(shape, "{}\n"))
    state = work / f"{shape}-{size_mib}.db"
    rss = peak_rss_mib([sys.executable, "-m", "forwarder", "enrich", "--config", str(config), "--state", str(state), str(obj)])
    obj.unlink()
    state.unlink(missing_ok=True)
    return size, rss


def concurrent(work: Path, shape: str, size_mib: int, concurrency: int) -> tuple[int, float]:
    objects = [work / f"c{tag}-{shape}-{size_mib}.json.gz" for tag in range(concurrency)]
    size = sum(build(obj, shape, size_mib, tag) for tag, obj in enumerate(objects)) // concurrency
    config = work / "daemon.yaml"
    config.write_text(
        f"{SHAPE_CONFIG.get(shape, '')}source: {{type: sqs, queue_url: https://sqs.us-east-1.amazonaws.com/1/q, "
        f"region: us-east-1, concurrency: {concurrency}}}\n"
        f"state: {{type: sqlite, path: {work / 'daemon.db'}}}\ndead_letter: {{path: {work / 'dl'}}}\n"
        f"sinks: [{{type: ndjson, path: {os.devnull}}}]\nmetrics: {{listen: null}}\n"
    )
    rss = peak_rss_mib([sys.executable, __file__, "_daemon", str(config), *map(str, objects)])
    for path in (*objects, work / "daemon.db"):
        path.unlink(missing_ok=True)
    return size, rss


def _daemon_child(config_path: str, objects: list[str]) -> None:
    """The objects through the daemon's runtime at once, all held at the sink together."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from forwarder import aws
    from forwarder.config import load_config
    from forwarder.daemon import build_runtime

    config = load_config(Path(config_path))
    source = config.source
    for service in ("sqs", "s3"):
        aws.client(service, source.region, None, pool=source.concurrency + 2)
    runtime = build_runtime(config, source.max_object_bytes)
    (sink,) = runtime.pipeline.sinks
    arrived = threading.Barrier(len(objects))
    held = threading.local()
    send = sink.send

    def send_when_all_arrived(documents):  # type: ignore[no-untyped-def]
        if not getattr(held, "done", False):
            held.done = True
            arrived.wait(timeout=3600)
        return send(documents)

    sink.send = send_when_all_arrived  # type: ignore[method-assign]
    with ThreadPoolExecutor(len(objects)) as pool:
        outcomes = list(pool.map(lambda path: runtime.pipeline.process(path, Path(path).read_bytes()), objects))
    assert all(outcome.delivered for outcome in outcomes), outcomes
    runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,16,64,256", help="MiB uncompressed, one object at a time")
    parser.add_argument("--shapes", default="assumptions,sessions,calls,all,bomb")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--concurrent-sizes", default="8,32", help="MiB per object, CONCURRENCY objects at once")
    parser.add_argument("--concurrent-shapes", default="assumptions,sessions,all", help="shapes that ship documents")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="object-memory-") as tmp:
        work = Path(tmp)
        print("| shape | uncompressed MiB | `forwarder enrich` peak RSS MiB |\n|---|---:|---:|")
        for shape in args.shapes.split(","):
            for size_mib in map(int, args.sizes.split(",")):
                size, rss = single(work, shape, size_mib)
                print(f"| {shape} | {size / MIB:.0f} | {rss:.0f} |", flush=True)
        print("\n| shape | objects at once | MiB each | daemon runtime peak RSS MiB |\n|---|---:|---:|---:|")
        runs = [(1, 1), *((args.concurrency, int(size)) for size in args.concurrent_sizes.split(","))]
        for shape in args.concurrent_shapes.split(","):
            for count, size_mib in runs:
                size, rss = concurrent(work, shape, size_mib, count)
                print(f"| {shape} | {count} | {size / MIB:.0f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["_daemon"]:
        _daemon_child(sys.argv[2], sys.argv[3:])
    else:
        main()
