"""One step of enrichment (an object, a release of held records) and what it learnt."""

from __future__ import annotations

from dataclasses import dataclass, field

from forwarder.enrich.chains import Chain, Session
from forwarder.enrich.identity import Caller
from forwarder.state.base import Held, Writes


@dataclass(slots=True, eq=False)
class Step:
    """What enriching one object (or a release of held records) learnt, not yet durable.

    Its writes reach the store only when the step is committed, after every sink accepted its
    documents; until then only later steps' enrichment sees it. A step that fails is discarded
    and leaves no trace, so the object read again is enriched as the first time.
    """

    writes: Writes = field(default_factory=Writes)
    claimed: list[str] = field(default_factory=list)  # held records taken from the store
    sessions: dict[str, Session] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)  # keys the store had no session for, read in this step
    callers: dict[str, Caller] = field(default_factory=dict)
    resolved: dict[str, Chain] = field(default_factory=dict)
    waiting: dict[str, list[Held]] = field(default_factory=dict)  # this step's holds, by what releases them
    # Links registered by later steps while this one held records waiting on them: once this
    # step's holds are in the store, they are released again (see Enricher.release_due).
    wake: set[str] = field(default_factory=set)
    woken: set[str] = field(default_factory=set)  # the wake-ups this step (a release) served
