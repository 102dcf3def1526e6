"""CPU per Elasticsearch document (``forwarder.sinks.es_document.to_es``: ECS fields, the id,
the splice into the record's own bytes), on the public invictus records as ``select: all``
ships them (each record parsed once, its bytes kept), and what the source.ip test costs.

    python benchmarks/es_document.py [--copies 10] [--runs 7]

One process on one core (taskset, when there); each figure is the least of ``--runs`` passes
over the same documents (interference on a shared machine only adds).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from forwarder.document import Document  # noqa: E402
from forwarder.sinks import es_document  # noqa: E402

SHARED = Path(os.environ.get("FORWARDER_SHARED") or Path(__file__).resolve().parents[2] / "shared")
DATA = SHARED / "data" / "invictus-aws-dataset"


def least(runs: int, work: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def each(function: Callable[[Any], object], items: list[Any]) -> Callable[[], None]:
    """A pass of ``function`` over ``items``, nothing kept (as a sink hands each document on)."""
    def work() -> None:
        for item in items:
            function(item)
    return work


def by_ipaddress(value: str) -> str | None:
    """The test before: ipaddress for every address that starts with a digit or holds a colon."""
    if not value or not (value[0].isdigit() or ":" in value):
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    records = [r for path in sorted(DATA.glob("*.json")) for r in json.loads(path.read_text())["Records"]]
    documents = [Document(record, None, "bench", orjson.dumps(record)) for record in records] * args.copies
    seconds = least(args.runs, each(es_document.to_es, documents))
    print(f"to_es: {len(documents):,} documents, {seconds / len(documents) * 1e6:.2f} µs per document")
    addresses = [r["sourceIPAddress"] for r in records if isinstance(r.get("sourceIPAddress"), str)] * args.copies
    for name, test in (("ipaddress", by_ipaddress), ("source_ip", getattr(es_document, "source_ip", None))):
        if test is not None:
            spent = least(args.runs, each(test, addresses))
            print(f"{name}: {len(addresses):,} sourceIPAddress values, {spent / len(addresses) * 1e6:.2f} µs each")


if __name__ == "__main__":
    main()
