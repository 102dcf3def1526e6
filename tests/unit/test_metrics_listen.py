"""metrics.listen: refused at load when it is not HOST:PORT, a clean ConfigError when it cannot be bound."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from forwarder.config import ConfigError, load_config
from forwarder.metrics import Health, Metrics, serve


@pytest.mark.parametrize("listen", ["not-an-address", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":9108",
                                    "127.0.0.1:http", "::1:9108", "[not-ipv6]:9108", "host name:9108"])
def test_a_listen_value_that_is_not_host_port_is_refused_at_load(tmp_path: Path, listen: str) -> None:
    path = tmp_path / "forwarder.yaml"
    path.write_text(f"metrics: {{listen: '{listen}'}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "metrics.listen" in str(caught.value) and "HOST:PORT" in str(caught.value)


@pytest.mark.parametrize(("written", "listen"), [("127.0.0.1:9108", "127.0.0.1:9108"), ("0.0.0.0:9108", "0.0.0.0:9108"),
                                              ("localhost:9108", "localhost:9108"), ("'[::1]:9108'", "[::1]:9108"),
                                              ("null", None)])
def test_usable_listen_values_load(tmp_path: Path, written: str, listen: str | None) -> None:
    path = tmp_path / "forwarder.yaml"
    path.write_text(f"metrics:\n  listen: {written}\n")
    assert load_config(path).metrics.listen == listen


def test_a_port_in_use_names_the_key_the_address_and_the_reason() -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    listen = f"127.0.0.1:{taken.getsockname()[1]}"
    try:
        with pytest.raises(ConfigError) as caught:
            serve(listen, Metrics(), Health(60))
    finally:
        taken.close()
    message = str(caught.value)
    assert "metrics.listen" in message and listen in message and "in use" in message


def test_an_address_of_another_machine_is_a_config_error() -> None:
    listen = "192.0.2.1:9108"  # TEST-NET-1: never an address of this machine
    with pytest.raises(ConfigError) as caught:
        serve(listen, Metrics(), Health(60))
    assert "metrics.listen" in str(caught.value) and listen in str(caught.value)


def test_a_free_address_serves_metrics() -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    stop = serve(f"127.0.0.1:{port}", Metrics(), Health(60))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            assert answer.status == 200
    finally:
        stop()
