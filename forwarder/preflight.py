"""What `forwarder check-config` looks at beyond the file's validity (addresses are checked as
the file loads, for every command): whether `forwarder run` will find what the configuration
names (a source it reads, its secrets, the sinks' files).

Nothing is contacted: a cluster or a queue that is down today is not a configuration error.
Secrets are read to see that they can be, never shown.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from forwarder.config import BulkIndexSink, Config, ConfigError, FilesSource, NdjsonSink, SecretRef
from forwarder.sinks.base import SinkFatal

# Read by `forwarder sigma generate|deploy` and `forwarder setup kibana` only: a daemon host need
# not hold the Splunk login or the Kibana key.
NOT_FOR_RUN = frozenset({"detections", "kibana"})


def problems(config: Config) -> list[str]:
    """One line per problem, each starting with the key it is about; empty when `run` can start."""
    found: list[str] = []
    if isinstance(config.source, FilesSource):
        found.append("source: type files (the default when there is no source section) is read only by "
                     "`forwarder enrich`, which takes its paths on the command line; `forwarder run` reads type sqs or s3")
    for key, secret in _secrets(config):
        try:
            secret.get()
        except ConfigError as exc:
            found.append(f"{key}: {exc}")
    for index, sink in enumerate(config.sinks):
        found += [f"sinks.{index}.{problem}" for problem in _sink(sink)]
    if config.baseline.enabled and config.baseline.mmdb:
        from forwarder.baseline.geo import Geo

        try:
            Geo(config.baseline.mmdb).close()  # the files the baseline's geography opens at start
        except ConfigError as exc:
            found.append(str(exc))
    return found


def _secrets(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, SecretRef]]:
    """Every secret reference below ``model`` with its dotted key (sinks.0.token)."""
    for name in type(model).model_fields:
        if not prefix and name in NOT_FOR_RUN:
            continue
        value = getattr(model, name)
        entries = [(f"{prefix}{name}.{i}", item) for i, item in enumerate(value)] if isinstance(value, list) else [
            (f"{prefix}{name}", value)]
        for key, item in entries:
            if isinstance(item, SecretRef):
                yield key, item
            elif isinstance(item, BaseModel):
                yield from _secrets(item, f"{key}.")


def _sink(sink: Any) -> Iterator[str]:
    ca_file: Path | None = getattr(sink, "ca_file", None)
    if ca_file is not None:
        problem = _ca_file_problem(ca_file)
        if problem:
            yield f"ca_file: {problem}"
    if isinstance(sink, NdjsonSink) and sink.path != "-":
        problem = _writable_file_problem(Path(sink.path))
        if problem:
            yield f"path: {problem}"
    if isinstance(sink, BulkIndexSink) and not sink.data_stream:
        from forwarder.sinks.bulk import index_namer  # loads the sinks' shared code: only when needed

        try:
            index_namer(sink.index, sink.type)
        except SinkFatal as exc:
            yield f"index: {str(exc).removeprefix(f'{sink.type} sink: ')}"


def _ca_file_problem(path: Path) -> str | None:
    try:
        ssl.create_default_context().load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:  # before OSError, which it is a kind of
        return f"{path} holds no PEM certificate that TLS can load ({exc.reason or exc})"
    except OSError as exc:
        return f"{path}: cannot read it: {exc.strerror or exc}"
    return None


def _writable_file_problem(path: Path) -> str | None:
    if path.is_dir():
        return f"{path} is a directory: name a file in it"
    if path.exists():
        return None if os.access(path, os.W_OK) else f"{path} is not writable by this user"
    parent = path.parent
    if not parent.is_dir():
        return f"{path}: the directory {parent} does not exist"
    return None if os.access(parent, os.W_OK | os.X_OK) else f"{path}: the directory {parent} is not writable by this user"
