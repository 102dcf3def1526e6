"""The SQLite state store failing under a running daemon: its volume full, its file locked by
another process. Each test counts every record: delivered or dead-lettered, none lost, and the
daemon survives to exit 0 with no traceback.

The faults come in the middle of a run: a first wave of objects is delivered, then the fault
starts, then a second wave is sent, so that the daemon meets the fault with work in hand.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_world import World
from ledger import Ledger, Run, Start, check, wait_for

IDLE = "6"  # --exit-when-idle: longer than a retried message stays away (retry_delay_seconds: 1)


def _first_wave(world: World, ledger: Ledger, daemons: Start, config: Path) -> Run:
    ledger.notify(ledger.put(4, 50))
    run = daemons(config, "--exit-when-idle", IDLE)
    wait_for("the first wave delivered", lambda: ledger.delivered_so_far([world.output]) >= 200, 60)
    return run


def _finish(world: World, ledger: Ledger, run: Run) -> None:
    code = run.wait(180)
    check(ledger.tally_ndjson([world.output], [world.dead_letter]), world, {run: code})


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs for the state directory, as a small volume a container mounts."""
    mount = tmp_path / "state-volume"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
                       check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        reason = getattr(exc, "stderr", b"") or str(exc)
        pytest.skip(f"cannot mount a tmpfs for the state volume (needs root): {reason!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True, timeout=30)


def _fill(directory: Path) -> Path:
    """Take every free byte of ``directory``'s file system: a filler file, written until ENOSPC."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            while True:
                try:
                    if out.write(b"\0" * size) != size:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return filler


def test_the_state_volume_full_mid_run_loses_nothing(world: World, ledger: Ledger, daemons: Start,
                                                     small_volume: Path) -> None:
    config = world.config(state={"type": "sqlite", "path": str(small_volume / "state.db")})
    run = _first_wave(world, ledger, daemons, config)
    filler = _fill(small_volume)
    before = len(run.logs())
    ledger.notify(ledger.put(20, 50))
    # The daemon must have met the full volume (and said so) a few times: then space comes back.
    wait_for("the full volume reported in the log", lambda: len(run.logged(before)) >= 3, 90)
    filler.unlink()
    _finish(world, ledger, run)


# Another process holding the write lock: `dlq replay` or `backfill` on the same file, as the
# operator's guide allows, or an operator's `sqlite3` shell left in a transaction.
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


@pytest.mark.parametrize("seconds", [6, 10])
def test_the_state_file_locked_by_another_process_loses_nothing(world: World, ledger: Ledger, daemons: Start,
                                                                seconds: int) -> None:
    """Longer than SQLite's default 5 s busy wait; 10 s spans a housekeeping tick (every 5 s) too."""
    config = world.config()
    run = _first_wave(world, ledger, daemons, config)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(world.tmp / "state.db"), str(seconds)],
                              stdout=subprocess.PIPE)
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        ledger.notify(ledger.put(12, 50))
        assert locker.wait(seconds + 30) == 0
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait(10)
    _finish(world, ledger, run)
