"""Fixtures for the fault suite: the daemon tests' moto and world (imported from their conftest,
not copied), a Redis of the test's own that it may stop, and daemons that are always killed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paths import REPO

sys.path.insert(0, str(REPO / "tests" / "daemon"))

from aws_world import World  # noqa: E402
from daemon.conftest import moto_url, world  # noqa: E402
from ledger import Ledger, Run  # noqa: E402
from servers.redis_process import RedisProcess  # noqa: E402


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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    try:
        server = RedisProcess(tmp_path / "redis")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with server:
        yield server
