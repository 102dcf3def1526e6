"""`forwarder enrich` throughput and peak memory, next to the floor of merely parsing the files.

Input: the 2,900 real records of ../shared/data/invictus-aws-dataset repeated COPIES times,
each copy with fresh eventIDs and access keys (so chains and duplicates behave as in a bigger
organisation), written as AWS delivers them (.json.gz, one file per original delivery file).

    python benchmarks/enrich_throughput.py [--copies 100] [--runs 3]

Each measurement runs in its own process pinned to one core (taskset), and peak memory is
that process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

# ../shared beside the checkout, as the tests find it (FORWARDER_SHARED when it stands elsewhere).
SHARED = Path(os.environ.get("FORWARDER_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DATA = SHARED / "data" / "invictus-aws-dataset"
KEY = re.compile(rb'"(A[SK]IA[A-Z0-9]{12,})"')


def installed_env() -> dict[str, str]:
    """This environment for a measured child, less PYTHONDONTWRITEBYTECODE: bytecode written and
    then used, as an installed package has it (pip compiles at install); where it is set, every
    start would compile the forwarder's sources again."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


FLOOR = """
import gzip, sys, orjson, pathlib
n = 0
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.json.gz")):
    records = orjson.loads(gzip.decompress(path.read_bytes()))["Records"]
    out = b"".join(orjson.dumps(r) + b"\\n" for r in records)
    n += len(records)
print(n)
"""


def build(copies: int, target: Path) -> int:
    originals = sorted(DATA.glob("*.json"))
    total = 0
    for copy in range(copies):
        for number, path in enumerate(originals):
            body = path.read_bytes()
            # The prefix kept: a long-term key (AKIA) and a temporary one (ASIA) select differently.
            keys = {k: f"{k[:4].decode()}{copy:06d}{abs(hash(k)) % 10**8:08d}"[:20].encode() for k in set(KEY.findall(body))}
            body = KEY.sub(lambda m, keys=keys: b'"' + keys[m.group(1)] + b'"', body)
            records = json.loads(body)["Records"]
            for record in records:
                record["eventID"] = str(uuid.uuid4())
            total += len(records)
            out = target / f"AWSLogs/218007301253/CloudTrail/us-east-1/2023/07/{10 + copy // 100:02d}"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"c{copy:04d}-{number:03d}.json.gz").write_bytes(
                gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode(), 6)
            )
    return total


# A launcher per measurement, so that the peak RSS is that one process's, not the maximum
# over every child this script has started.
LAUNCHER = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def measure(command: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process on one core."""
    pinned = ["taskset", "-c", "0", *command] if shutil.which("taskset") else command
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, *pinned], check=True, capture_output=True, text=True,
                          env=installed_env())
    return time.perf_counter() - start, int(done.stdout.split()[-1])


def best(command: list[str], runs: int) -> tuple[float, int]:
    results = [measure(command) for _ in range(runs)]
    return min(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"needs the public samples at {DATA}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        small, large = root / "small", root / "large"
        records_small = build(max(1, args.copies // 4), small)
        records = build(args.copies, large)
        all_config = root / "all.yaml"
        all_config.write_text("select: all\n")
        forwarder = [sys.executable, "-m", "forwarder", "enrich"]
        rows = [
            ("floor: gzip + orjson.loads + orjson.dumps", [sys.executable, "-c", FLOOR, str(large)], records),
            ("forwarder enrich (default selection)", [*forwarder, str(large)], records),
            ("forwarder enrich --config select: all", [*forwarder, "--config", str(all_config), str(large)], records),
            ("forwarder enrich, a quarter of the files", [*forwarder, str(small)], records_small),
        ]
        print(f"input: {records} records in {len(list(large.rglob('*.gz')))} files; python {sys.version.split()[0]}; cpu {os.cpu_count()}")
        print(f"{'what':48} {'records/s':>12} {'seconds':>8} {'peak RSS MiB':>13}")
        for label, command, count in rows:
            seconds, peak = best(command, args.runs)
            print(f"{label:48} {count / seconds:12,.0f} {seconds:8.2f} {peak / 1024:13.1f}")


if __name__ == "__main__":
    main()
