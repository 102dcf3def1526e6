"""Start-up of the forwarder's commands, each a fresh process from start to exit, next to Python's
own start and to pydantic's import (the floor of every command that has a configuration).

    python benchmarks/startup.py [--runs 21]

Every command runs ``--runs`` times, pinned to core 0 (taskset, when there), the rows in turn
(A B C A B C ...) so that a drift of the shared machine touches them alike; each figure is the
median, wall and CPU (user + system of the finished child). Then where `forwarder enrich
/dev/null` spends its imports (``python -X importtime``, the least of 5 runs per module group).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enrich_throughput import installed_env  # noqa: E402

PYTHON = sys.executable
FORWARDER = [PYTHON, "-c", "import sys; from forwarder.cli import main; sys.exit(main())"]
PYDANTIC = "from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator"
# A daemon's configuration (never run: nothing here connects anywhere), and one for `enrich`.
CONFIG = """\
source: {type: sqs, queue_url: "https://sqs.eu-west-1.amazonaws.com/111111111111/trail", region: eu-west-1}
sinks: [{type: elasticsearch, hosts: ["https://search.example.com:9200"]}]
roles: {sensitive: [{pattern: "arn:aws:iam::*:role/Admin"}]}
"""
ENRICH_CONFIG = """\
select: all
sinks: [{type: ndjson, path: "-"}]
"""
# What `forwarder run` loads before its first receive: the configuration validated, the daemon,
# the SQS source (boto3, awscrt), the metrics (prometheus_client) and the configured sink.
RUN_PATH = ("import sys; from forwarder.config import load_config; load_config(sys.argv[1]); "
            "import forwarder.cli, forwarder.daemon, forwarder.sources.sqs, forwarder.sinks.elasticsearch")


def _pin(command: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *command] if shutil.which("taskset") else command


def _once(command: list[str]) -> tuple[float, float]:
    start = time.perf_counter()
    process = subprocess.Popen(_pin(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=installed_env())
    _, _, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def import_groups(command: list[str], runs: int = 5) -> dict[str, float]:
    """Milliseconds of import per group (pydantic, the forwarder's own modules, ...), least of ``runs``."""
    best: dict[str, float] = {}
    for _ in range(runs):
        done = subprocess.run(_pin([PYTHON, "-X", "importtime", *command[1:]]), capture_output=True, text=True, env=installed_env())
        spent: dict[str, float] = defaultdict(float)
        for line in done.stderr.splitlines():
            if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
                continue
            own, _, name = line.removeprefix("import time:").split("|")
            top = name.strip().split(".")[0]
            group = top if top in {"forwarder", "pydantic", "pydantic_core", "yaml", "orjson", "msgspec", "isal",
                                   "typing_extensions", "annotated_types"} else "standard library and others"
            group = "pydantic (and its typing helpers)" if group in {
                "pydantic", "pydantic_core", "typing_extensions", "annotated_types"} else group
            spent[group] += int(own) / 1000
        for group, ms in spent.items():
            best[group] = min(ms, best.get(group, ms))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        config, enrich_config = Path(scratch) / "daemon.yaml", Path(scratch) / "enrich.yaml"
        config.write_text(CONFIG)
        enrich_config.write_text(ENRICH_CONFIG)
        rows = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "pydantic's import alone": [PYTHON, "-c", PYDANTIC],
            "forwarder enrich /dev/null": [*FORWARDER, "enrich", "/dev/null"],
            "forwarder enrich --config FILE /dev/null": [*FORWARDER, "enrich", "--config", str(enrich_config), "/dev/null"],
            "forwarder check-config FILE (sqs, elasticsearch)": [*FORWARDER, "check-config", str(config)],
            "forwarder run's imports (sqs, elasticsearch)": [PYTHON, "-c", RUN_PATH, str(config)],
        }
        for command in rows.values():
            _once(command)  # bytecode compiled, files in the page cache
        timings: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.runs):
            for name, command in rows.items():
                timings[name].append(_once(command))
        base = statistics.median(wall for wall, _ in timings["python -c pass"])
        print(f"{'command':50} {'wall s':>8} {'cpu s':>8} {'wall / python':>14}   (medians of {args.runs})")
        for name, runs in timings.items():
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            print(f"{name:50} {wall:8.3f} {cpu:8.3f} {wall / base:14.1f}")
        print("\nforwarder enrich /dev/null, import time by group (ms, least of 5):")
        groups = import_groups([*FORWARDER, "enrich", "/dev/null"])
        for group, ms in sorted(groups.items(), key=lambda item: -item[1]):
            print(f"  {group:40} {ms:7.1f}")
        print(f"  {'all':40} {sum(groups.values()):7.1f}")


if __name__ == "__main__":
    main()
