"""What the behaviour baseline costs: CPU per record on and off, state bytes per thousand pairs,
and the Redis round trips it adds per object.

    python benchmarks/baseline_cost.py [--copies 100] [--runs 3] [--pairs 1000] [--skip-cpu] [--instructions]

1. CPU: `forwarder enrich` on enrich_throughput.py's input (the invictus records, COPIES times),
   baseline on (the default) and off, each in its own process pinned to one core; user + system
   seconds of that process, off and on in turn, best and median of RUNS; then RUNS rounds of the
   two at once, one per core, whose ratio a machine's drifting load moves far less. With --instructions,
   also the instructions each executes (valgrind's callgrind, both at once, about 5 minutes for
   the 290,000 records): a count that a shared machine's load does not move, where CPU seconds
   of the same run can differ by a third.
2. Bytes: PAIRS (subject, role) pairs, each assumed on 30 consecutive days (three times a day,
   from two networks, in office hours), committed through the enricher's own code into SQLite
   and into Redis; the baseline's stored bytes (SQLite: the values' length; Redis: MEMORY USAGE
   of its hash), per thousand pairs. Every pair has its subject and its role to itself here: the
   figure is the upper bound of an organisation where nobody shares a role.
3. Round trips: the same objects through a Redis store, counting the writes to the socket
   (a pipeline is one), baseline on and off.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[1] / "tests")]

from enrich_throughput import DATA, build  # noqa: E402 - beside this script

USAGE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_utime + usage.ru_stime, usage.ru_maxrss)
"""


def _measured(command: list[str], core: int) -> list[str]:
    pinned = ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command
    return [sys.executable, "-c", USAGE, *pinned]


def cpu_seconds(command: list[str]) -> tuple[float, int]:
    """CPU seconds and peak RSS (KiB) of one child process on one core."""
    done = subprocess.run(_measured(command, 0), check=True, capture_output=True, text=True)
    seconds, peak = done.stdout.split()[-2:]
    return float(seconds), int(peak)


def paired(on: list[str], off: list[str], runs: int) -> list[float]:
    """Per round, on's CPU seconds over off's, the two run at once, one per core (swapped every
    round): whatever slows the machine for a while slows both. Both run slower than alone (they
    share the caches and the memory bus), so the ratio is of two loaded runs."""
    ratios = []
    for round_ in range(runs):
        cores = (0, 1) if round_ % 2 == 0 else (1, 0)
        started = [subprocess.Popen(_measured(command, core), stdout=subprocess.PIPE, text=True)
                   for command, core in ((on, cores[0]), (off, cores[1]))]
        seconds = [float(process.communicate()[0].split()[-2]) for process in started]
        if any(process.returncode for process in started):
            sys.exit("forwarder enrich failed")
        ratios.append(seconds[0] / seconds[1])
    return ratios


def cpu(copies: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = build(copies, root / "input")
        quarter = build(max(1, copies // 4), root / "quarter")
        off = root / "off.yaml"
        off.write_text("baseline: {enabled: false}\n")
        forwarder = [sys.executable, "-m", "forwarder", "enrich"]
        print(f"input: {records} records, python {sys.version.split()[0]}")
        cases = (("baseline off", [*forwarder, "--config", str(off), str(root / "input")], records),
                 ("baseline on (default)", [*forwarder, str(root / "input")], records),
                 ("baseline on, a quarter of the files", [*forwarder, str(root / "quarter")], quarter))
        # Round by round, off and on in turn (and each pair's ratio): a shared machine's load
        # drifts over minutes, and runs of one kind after the other would carry that drift.
        measured: dict[str, list[tuple[float, int]]] = {label: [] for label, _, _ in cases}
        ratios = []
        for round_ in range(runs):
            # Off first in one round, on first in the next: a process run right after another can
            # run slower (caches, the host's own budget), and always second would bias the ratio.
            for label, command, _ in (cases if round_ % 2 == 0 else (cases[1], cases[0], cases[2])):
                measured[label].append(cpu_seconds(command))
            ratios.append(measured["baseline on (default)"][-1][0] / measured["baseline off"][-1][0])
        for label, _, count in cases:
            best, middle = min(m[0] for m in measured[label]), statistics.median(m[0] for m in measured[label])
            print(f"{label:36} {best:8.2f} s CPU (median {middle:.2f})  {best / count * 1e6:7.2f} µs/record  "
                  f"peak RSS {max(m[1] for m in measured[label]) / 1024:6.1f} MiB")
        best = min(m[0] for m in measured["baseline on (default)"]) / min(m[0] for m in measured["baseline off"])
        print(f"the baseline costs {best - 1:.1%} more CPU (best against best); round by round "
              f"{statistics.median(ratios) - 1:.1%} (median), {min(ratios) - 1:.1%} .. {max(ratios) - 1:.1%}")
        if (os.cpu_count() or 1) >= 2:
            together = paired(cases[1][1], cases[0][1], runs)
            print(f"run at once, one per core: the baseline costs {statistics.median(together) - 1:.1%} more CPU "
                  f"(median of {runs} rounds), {min(together) - 1:.1%} .. {max(together) - 1:.1%}")


def instructions(copies: int) -> None:
    """Instructions executed by `forwarder enrich` off and on, start-up (an empty input) taken out."""
    if not shutil.which("valgrind"):
        sys.exit("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = build(copies, root / "input")
        off = root / "off.yaml"
        off.write_text("baseline: {enabled: false}\n")
        forwarder = [sys.executable, "-m", "forwarder", "enrich"]
        runs = {"start-up": [*forwarder, os.devnull], "baseline off": [*forwarder, "--config", str(off), str(root / "input")],
                "baseline on (default)": [*forwarder, str(root / "input")]}
        started = {label: subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for label, command in runs.items()}
        counted = {}
        for label, process in started.items():
            _, err = process.communicate()
            found = re.search(r"I\s+refs:\s+([\d,]+)", err)
            if not found or (process.returncode and label != "start-up"):  # an empty input exits 1
                sys.exit(f"{label}: valgrind failed: {err[-500:]}")
            counted[label] = int(found.group(1).replace(",", ""))
        for label in ("baseline off", "baseline on (default)"):
            work = counted[label] - counted["start-up"]
            print(f"{label:36} {work / 1e9:8.2f} G instructions  {work / records:9.0f} per record (start-up "
                  f"{counted['start-up'] / 1e9:.2f} G apart)")
        extra = (counted["baseline on (default)"] - counted["start-up"]) / (counted["baseline off"] - counted["start-up"])
        print(f"the baseline costs {extra - 1:.1%} more instructions")


def _objects(pairs: int) -> list[list[dict[str, Any]]]:
    """Per day, one object per hundred pairs: each pair assumed three times that day."""
    from cloudtrail import assume, user

    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    objects = []
    for day in range(30):
        for first in range(0, pairs, 100):
            records = []
            for n in range(first, min(first + 100, pairs)):
                who = user("111111111111", f"person{n:05d}")
                for hour in (0, 3, 6):
                    record = assume(who, f"arn:aws:iam::222222222222:role/Role{n:05d}",
                                    start + timedelta(days=day, hours=hour, minutes=n % 60))
                    record["sourceIPAddress"] = f"85.214.{n % 250}.{hour + 1}" if hour else f"91.64.{n % 250}.9"
                    records.append(record)
            objects.append(records)
    return objects


def _through(store: Any, objects: list[list[dict[str, Any]]], enabled: bool = True) -> None:
    import orjson

    from forwarder.config import parse_config
    from forwarder.deadletter import StderrDeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline

    config = parse_config({"baseline": {"enabled": enabled}})
    pipeline = Pipeline(Enricher(config, store, batch=True), [], StderrDeadLetter())
    for number, records in enumerate(objects):
        pipeline.process(f"object-{number}.json", orjson.dumps({"Records": records}))


ISSUANCE = ("source_ip", "agent_family", "vpc_endpoint_id")  # forwarder/enrich/chains.py's Session


def storage(pairs: int) -> None:
    import orjson

    from forwarder.state.sqlite import SqliteStore

    objects = _objects(pairs)
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "state.db")
        _through(store, objects)
        rows = store._db.execute(  # noqa: SLF001 - the figure is the store's own bytes
            "SELECT sum(length(key) + length(value)) FROM kv WHERE kind='baseline'").fetchone()
        sessions = [orjson.loads(value) for (value,) in store._db.execute(  # noqa: SLF001
            "SELECT value FROM kv WHERE kind='session'")]
        store.close()
    # Where each session was issued is kept in the session's own value (the chains' record of it).
    issued = sum(len(orjson.dumps(session)) - len(orjson.dumps({k: v for k, v in session.items() if k not in ISSUANCE}))
                 for session in sessions) / max(1, len(sessions))
    print(f"SQLite: {pairs} pairs: {rows[0] / pairs * 1000 / 2**20:.2f} MiB per thousand pairs (their pair, subject "
          f"and role values, keys included); beside them, where each of the {len(sessions)} sessions was issued: "
          f"{issued:.0f} bytes in its session's value (kept while the session lives)")
    with _redis() as url:
        if url is None:
            return
        import redis as client

        from forwarder.config import RedisState
        from forwarder.state.redis import RedisStore

        redis_store = RedisStore(RedisState(type="redis", url=url, key_prefix="bench:"))
        _through(redis_store, objects)
        used = client.Redis.from_url(url).memory_usage("bench:kv:baseline", samples=0)
        print(f"Redis: {used / pairs * 1000 / 2**20:.2f} MiB per thousand pairs (MEMORY USAGE of the baseline hash)")
        for enabled in (False, True):
            counted = _round_trips(url, objects[:50], enabled)
            print(f"Redis round trips per object, baseline {'on ' if enabled else 'off'}: {counted:.1f} "
                  f"(objects of 300 assumptions)")
        redis_store.close()


def _round_trips(url: str, objects: list[list[dict[str, Any]]], enabled: bool) -> float:
    import redis.connection

    from forwarder.config import RedisState
    from forwarder.state.redis import RedisStore

    store = RedisStore(RedisState(type="redis", url=url, key_prefix=f"trips{int(enabled)}:"))
    sent = 0
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        nonlocal sent
        sent += 1
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        _through(store, objects, enabled)
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]
        store.close()
    return sent / len(objects)


class _redis:
    """A redis-server of this run's own on a free port (tests/servers/redis_process.py)."""

    def __enter__(self) -> str | None:
        from servers.redis_process import RedisProcess

        self._dir = tempfile.TemporaryDirectory()
        try:
            self._server = RedisProcess(Path(self._dir.name))
        except FileNotFoundError as exc:
            print(f"Redis: skipped ({exc})")
            self._server = None
            return None
        self._server.__enter__()
        return self._server.url

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)
        self._dir.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--instructions", action="store_true", help="also count instructions with valgrind")
    args = parser.parse_args()
    if not args.skip_cpu:
        if not DATA.is_dir():
            sys.exit(f"needs the public samples at {DATA}")
        cpu(args.copies, args.runs)
        if args.instructions:
            instructions(args.copies)
    storage(args.pairs)
    print(f"(peak RSS of this script: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB, cpu {os.cpu_count()})")


if __name__ == "__main__":
    main()
