"""Structured logs: one JSON object per line (time, level, message, and the record's fields).

Fields are passed as ``extra={...}`` (message_id, object, reason, ...). Nothing secret is ever
passed: sinks name where a secret lives (SecretRef's repr), never its value.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from forwarder.config import LoggingConfig

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """For a terminal: the message, then its fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        line = f"{self.formatTime(record)} {record.levelname} {record.getMessage()}"
        return f"{line} {fields}" if fields else line


def configure(config: LoggingConfig) -> None:
    """Logs go to standard error (standard output may be an NDJSON sink)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if config.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    # botocore and urllib3 log request details (signed headers included) at DEBUG; the search
    # clients (elastic_transport, opensearch-py's "opensearch") every request at INFO.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "elastic_transport", "opensearch"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(config.level)))
