"""A sink that fails with something other than SinkError: the Splunk HEC sink behind a front
that answers garbage (a JSON answer whose ``code`` no HEC sends, which the sink's own checks trip
over) or cuts its answers short after the events were indexed. Every record is delivered once
the faults pass, or dead-lettered; a resend may index a record twice, with its eventID."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from aws_world import World
from ledger import Ledger, Start, check
from servers.hec_server import HecServer, Token
from servers.s3_front import RESET, TRUNCATE, FaultFront, answer

TOKEN = "5f4c1e9a-2b3d-4e6f-8a7b-9c0d1e2f3a4b"


def _event_posts(method: str, path: str) -> str | None:
    return "event" if method == "POST" and urlsplit(path).path.startswith("/services/collector/event") else None


@pytest.mark.parametrize("faults", [
    pytest.param([answer(400, b'{"text":"Bad Request","code":[]}'), answer(400, b'{"text":"?","code":{"n":6}}')] * 2,
                 id="garbage-answers"),
    pytest.param([TRUNCATE, RESET, TRUNCATE, TRUNCATE, RESET, TRUNCATE], id="answers-cut-short"),
])
def test_a_collector_failing_oddly_loses_nothing(world: World, ledger: Ledger, daemons: Start,
                                                 monkeypatch: pytest.MonkeyPatch, faults: list[Any]) -> None:
    monkeypatch.setenv("TEST_HEC_TOKEN", TOKEN)
    keys = ledger.put(10, 20)
    with HecServer([Token(TOKEN)]) as hec, FaultFront(hec.url, match=_event_posts) as front:
        front.plan("event", faults)
        config = world.config(sinks=[{
            "type": "splunk_hec", "url": front.url, "token": {"env": "TEST_HEC_TOKEN"}, "batch_max_events": 50,
            "max_retries": 1, "retry_initial_seconds": 0.1, "retry_max_seconds": 0.2,
        }])
        ledger.notify(keys)
        run = daemons(config, "--exit-when-idle", "6")
        code = run.wait(180)
        delivered = [event.event.get("eventID") for event in hec.events() if isinstance(event.event, dict)]
        unreadable = [repr(event.event)[:200].encode() for event in hec.events() if not isinstance(event.event, dict)]
    assert front.pending() == 0, f"faults not served: the test did not test them ({front.served})"
    check(ledger.tally(delivered, [world.dead_letter], unreadable), world, {run: code})
