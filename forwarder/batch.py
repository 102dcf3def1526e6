"""The batch path: local files through the pipeline, once, resolving over the whole input."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from forwarder.pipeline import MustStop, NotDelivered, Outcome, Pipeline
from forwarder.reader import ObjectError
from forwarder.sources.files import log_files


@dataclass(slots=True)
class BatchResult:
    files: int = 0
    records: int = 0
    delivered: int = 0
    duplicates: int = 0
    failed_files: int = 0

    def add(self, outcome: Outcome) -> None:
        self.records += outcome.records
        self.delivered += outcome.delivered
        self.duplicates += outcome.duplicates


def run_files(pipeline: Pipeline, paths: Iterable[Path]) -> BatchResult:
    """Every file once, then everything still held: an unreadable file is reported and the
    rest goes on."""
    result = BatchResult()
    gc.freeze()  # start-up's objects live as long as the run: out of the collector's full passes
    for path in log_files(paths):
        result.files += 1
        try:
            data = path.read_bytes()
            result.add(pipeline.process(str(path), data))
        except OSError as exc:
            result.failed_files += 1
            print(f"forwarder: {path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        except ObjectError as exc:
            result.failed_files += 1
            print(f"forwarder: {exc}", file=sys.stderr)
        except MustStop:
            raise
        except NotDelivered as exc:  # nothing of the file was kept: it can be given again
            result.failed_files += 1
            print(f"forwarder: {path}: not delivered: {exc.reason}", file=sys.stderr)
    result.add(pipeline.flush())
    return result
