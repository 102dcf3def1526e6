"""The systemd unit: systemd-analyze verify, and the sample configuration that goes with it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from artifacts import DEPLOY

from forwarder.cli import build_parser
from forwarder.config import SecretRef, load_config

UNIT = DEPLOY / "systemd" / "forwarder.service"
CONFIG = DEPLOY / "systemd" / "config.yaml"
INSTALLED_BINARY = "/opt/forwarder/bin/forwarder"
# systemd's system-call table can be newer than the machine's libseccomp: a notice, not a fault.
NOISE = re.compile(r"Failed to parse system call")


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in unit.splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (tests/servers/install-system-packages installs systemd)")
    # verify checks that ExecStart's program exists: point it at this venv's forwarder, which
    # is what /opt/forwarder/bin/forwarder is once installed.
    binary = Path(sys.executable).parent / "forwarder"
    unit = tmp_path / "forwarder.service"
    unit.write_text(unit_text.replace(INSTALLED_BINARY, str(binary)))
    return subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True)


def complaints(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip() and not NOISE.search(line)]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert INSTALLED_BINARY in settings(text)["ExecStart"][0]
    result = verify(text, tmp_path)
    assert result.returncode == 0 and complaints(result) == [], complaints(result)


def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    result = verify(UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes"), tmp_path)
    assert any("restart" in line.lower() for line in complaints(result)), complaints(result)


def test_unit_runs_hardened_as_its_own_user() -> None:
    unit = settings(UNIT.read_text())
    assert unit["User"] == ["forwarder"] and unit["Restart"] == ["on-failure"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "StateDirectory": "forwarder"}.items():
        assert unit[key] == [value], key
    assert "run --config /etc/forwarder/config.yaml" in unit["ExecStart"][0]


def test_stop_timeout_outlasts_the_graceful_shutdown() -> None:
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    run = commands.choices["run"]  # type: ignore[index]
    drain = next(a.default for a in run._actions if a.dest == "shutdown_timeout")
    stop = int(settings(UNIT.read_text())["TimeoutStopSec"][0])
    assert stop >= drain + 15, f"TimeoutStopSec={stop} leaves no time to close the sinks after the {drain} s drain"


def test_sample_config_uses_the_units_credentials_and_state() -> None:
    config = load_config(CONFIG)
    unit = settings(UNIT.read_text())
    credentials = {entry.split(":", 1)[0] for entry in unit["LoadCredential"]}
    secrets = [value for sink in config.sinks for value in vars(sink).values() if isinstance(value, SecretRef)]
    assert secrets
    for secret in secrets:
        assert secret.file is not None and secret.file.parent == Path("/run/credentials/forwarder.service")
        assert secret.file.name in credentials
    state_directory = Path("/var/lib") / unit["StateDirectory"][0]
    assert config.state.path.parent == state_directory  # type: ignore[union-attr]
    assert config.dead_letter.path.parent == state_directory
