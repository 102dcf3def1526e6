"""What the Elasticsearch and OpenSearch tests share: the node of a test session, names for one
test on it, the documents they send, and a send across a restart of the node."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson
import pytest

from forwarder.config import BulkIndexSink, Config
from forwarder.document import Document
from forwarder.sinks.base import Delivery, Sink, SinkError
from paths import DATA


def run_node(script: Path, command: str) -> str:
    """``script start|stop|url`` (tests/servers/search-node): its output, or RuntimeError with its errors."""
    done = subprocess.run([str(script), command], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {command} failed:\n{done.stderr}")
    return done.stdout.strip()


def session_node(script: Path, existing: str) -> Iterator[str]:
    """The body of a session fixture: the URL in the ``existing`` variable, or the test node
    (stopped at the end if this session started it)."""
    if os.environ.get(existing):
        yield os.environ[existing]
        return
    was_running = subprocess.run([str(script), "url"], capture_output=True).returncode == 0
    url = run_node(script, "start")
    yield url
    if not was_running:
        run_node(script, "stop")


class Space:
    """Names for one test on a shared node (its templates, indices and dead-letter index), and
    the sink settings over them; a product's subclass names its client's calls."""

    product: str  # the sink's type
    model: type[BulkIndexSink]  # its configuration
    existing: str  # the variable that names a cluster that is not the test node
    parsing_error: str  # the error type of a document its mapping refuses

    def __init__(self, url: str, client: Any) -> None:
        self.url = url
        self.client = client
        self.prefix = f"fwtest-{uuid.uuid4().hex[:10]}"
        self.pattern = f"{self.prefix}-*"
        self.dead_letter = f"{self.prefix}-dead-letter"
        self.sinks: list[Sink] = []

    sink_class: Callable[[Any], Sink]
    install: Callable[[Any], object]  # `forwarder setup` for a configuration

    def refresh(self) -> None:
        """The two clients take the same call: what was indexed becomes searchable."""
        self.client.indices.refresh(index=self.pattern, ignore_unavailable=True, allow_no_indices=True)

    def sink(self, setup: bool = True, **overrides: Any) -> Any:
        """A sink over these names; ``setup`` installs its templates first, straight onto the node
        (whatever front the sink itself goes through)."""
        if setup:
            self.install(self.config(**{key: value for key, value in overrides.items() if key in ("index", "data_stream")}))
        sink = self.sink_class(self.config(**overrides))
        self.sinks.append(sink)
        return sink

    def config(self, **overrides: Any) -> Any:
        """A sink's configuration over these names, quick to retry."""
        return self.model.model_validate({
            "type": self.product,
            "hosts": [self.url],
            "template_name": self.prefix,
            "index": f"{self.prefix}-ct-{{%Y.%m.%d}}",
            "dead_letter_index": self.dead_letter,
            "max_retries": 3,
            "retry_initial_seconds": 0.05,
            "retry_max_seconds": 0.5,
            "request_timeout_seconds": 20,
            **overrides,
        })


class Indexing(Protocol):
    def sink(self) -> Sink: ...
    def refresh(self) -> None: ...
    def cleanup(self) -> None: ...


def indexed_stories(make: Callable[[], Indexing], stories: dict[str, list[Document]]) -> Iterator[dict[str, Any]]:
    """The body of a fixture: each story in a space of its own, through the real sink, cleaned up after."""
    spaces = {}
    for name, docs in stories.items():
        space = make()
        delivery = space.sink().send(docs)
        assert not delivery.rejected, delivery.rejected
        space.refresh()
        spaces[name] = space
    yield spaces
    for space in spaces.values():
        space.cleanup()


def enriched(objects: list[list[dict[str, Any]]], config: Config | None = None) -> list[Document]:
    """Records through the real enrichment (select: all), each eventID once."""
    from cloudtrail import enrich_objects

    return enrich_objects(objects, config or Config(select="all")).documents


def public_records() -> list[tuple[str, list[dict[str, Any]]]]:
    """(file name, records) of every public sample file; the test is skipped where they are absent."""
    files = sorted((DATA / "invictus-aws-dataset").glob("*.json")) + sorted((DATA / "corpus").glob("*.json"))
    if not files:
        pytest.skip(f"the public CloudTrail samples are not in {DATA.resolve()}")
    return [(path.name, json.loads(path.read_bytes())["Records"]) for path in files]


# Fixtures, for a conftest to import.

@pytest.fixture(scope="session")
def enriched_public() -> list[Document]:
    """Every public sample record, through the real enrichment (select: all), each eventID once."""
    return enriched([records for _, records in public_records()])


@pytest.fixture
def documents() -> Callable[..., list[Document]]:
    """Enriched documents made from the shapes AWS documents (tests/cloudtrail.py)."""
    return lambda records, config=None: enriched([records], config)


def fresh_copies(documents: Sequence[Document], copies: int) -> list[Document]:
    """``copies`` of ``documents``, each record with a new eventID (a bigger send of real records)."""
    out = []
    for _ in range(copies):
        for document in documents:
            record = dict(document.record, eventID=str(uuid.uuid4()))
            out.append(Document(record, document.assumerole, document.source, orjson.dumps(record)))
    return out


def _arrived(count: Callable[[], int]) -> bool:
    """Whether the first documents are searchable. A count while the sink's first index is still
    being created is answered 503 (no active shard yet): that is "not yet", not a failure."""
    try:
        return count() > 0
    except Exception:  # both products' clients raise their own ApiError; the probe only waits
        return False


def send_across_a_restart(sink: Sink, documents: Sequence[Document], count: Callable[[], int],
                          node: Callable[[str], str], url: str) -> Delivery:
    """``documents`` sent while the node is stopped (once ``count`` shows the first arrived) and
    started again; when the retries run out meanwhile, a second send completes it."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["delivery"] = sink.send(documents)
        except Exception as exc:  # the outcome is asserted below
            outcome["error"] = exc

    sender = threading.Thread(target=run)
    sender.start()
    deadline = time.monotonic() + 60
    while not _arrived(count) and time.monotonic() < deadline:  # wait for the first batches
        time.sleep(0.05)
    node("stop")
    try:
        time.sleep(1)
        stopped_while_sending = sender.is_alive()
    finally:
        restarted = node("start")
    assert restarted == url, "the node came back on another port"
    sender.join(timeout=240)
    assert not sender.is_alive()
    assert stopped_while_sending, "the send had ended before the node was stopped: nothing was tested"
    if "error" in outcome:  # retries ran out while it was down: a resend completes it
        assert isinstance(outcome["error"], SinkError)
        return sink.send(documents)
    delivery: Delivery = outcome["delivery"]
    return delivery
