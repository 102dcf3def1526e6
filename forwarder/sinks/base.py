"""The one interface every sink implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from forwarder.document import Document


@dataclass(slots=True)
class Rejected:
    """A document the destination refused for good (bad data, mapping error, too large)."""

    document: Document
    reason: str


@dataclass(slots=True)
class Delivery:
    """The outcome of one ``Sink.send``: everything not listed in ``rejected`` was accepted."""

    rejected: list[Rejected] = field(default_factory=list)


class SinkError(Exception):
    """The sink could not deliver (after its retries): nothing of the call may be acknowledged."""


class SinkFatal(SinkError):
    """A problem no retry can fix (bad token, missing template): the forwarder must stop."""


class Sink(Protocol):
    name: str

    def send(self, documents: Sequence[Document]) -> Delivery:
        """Deliver ``documents``; return only when each is accepted or rejected.

        Accepted means durable as far as the destination promises (indexed by Elasticsearch,
        acknowledged by the Splunk indexer when ack is on). Transient failures are retried
        inside; when the retries run out, raise ``SinkError`` so the caller acknowledges
        nothing and the input is read again.
        """
        ...

    def close(self) -> None:
        """Flush and release connections."""
        ...
