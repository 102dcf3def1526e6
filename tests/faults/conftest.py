"""Fixtures for the fault suite (moto, Redis and the world are the session's, tests/conftest.py):
a ledger of every record put in, and daemons that are always killed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aws_world import World
from ledger import Ledger, Run


@pytest.fixture
def ledger(world: World) -> Ledger:
    return Ledger(world)


@pytest.fixture
def daemons(world: World) -> Iterator[Callable[..., Run]]:
    """``start(config, *arguments, name=...)``: a ``forwarder run`` process, its log in the
    test's directory; every one still alive at the end of the test is killed."""
    started: list[Run] = []

    def start(config: Path, *arguments: str, name: str = "forwarder") -> Run:
        log = world.tmp / f"{name}.log"
        run = Run(name, world.spawn_logged(log, "run", "--config", str(config), *arguments), log)
        started.append(run)
        return run

    yield start
    for run in started:
        run.kill()
