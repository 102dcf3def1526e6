"""Local CloudTrail log files and directories (batch runs, the demo, tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

SUFFIXES = (".json", ".json.gz", ".gz")


def log_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Every log file under ``paths``, directories walked recursively in name order.

    A path that does not exist is yielded as it is, so that reading it reports the error.
    """
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        else:
            yield path
