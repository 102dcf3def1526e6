"""What every test shares: the log handler's cleanup, and the real servers the daemon, fault
and state tests talk to (moto in server mode, Debian's redis-server), one of each per session.

boto3 finds moto through AWS_ENDPOINT_URL, which the session sets: the same way an operator
points the forwarder at an S3/SQS-compatible endpoint (and the test of that at once).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_world import World
from servers.redis_process import RedisProcess


@pytest.fixture(autouse=True)
def _forwarder_log_handler_removed() -> Iterator[None]:
    """A command run in the test's process (`forwarder run` and the like) points the root logger
    at the stderr of that moment, which under pytest is a capture closed with the test: a later
    test's log line would then fail to write. Take that handler away after each test."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in before and type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    from servers.ports import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN")}
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1")
    os.environ.pop("AWS_SESSION_TOKEN", None)
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The session's Redis, shared: a test that stops Redis starts its own (``redis_server``)."""
    try:
        server = RedisProcess(tmp_path_factory.mktemp("redis"))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with server:
        yield server.url


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A Redis of the test's own, which it may stop and start again on the same port."""
    try:
        server = RedisProcess(tmp_path / "redis")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture
def world(moto_url: str, tmp_path: Path) -> World:
    return World(tmp_path)
