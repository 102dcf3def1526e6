"""S3 polling resumes from its checkpoint; backfill reads exactly a date range, resumably."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aws_world import World, log_key, when
from cloudtrail import assume, user

from forwarder.cli import main

ROLE = "arn:aws:iam::111111111111:role/Ops"


def _put(world: World, account: str, day: str, stamp: str, org: str | None = None, suffix: str | None = None) -> list[str]:
    at = when(f"{day.replace('/', '-')}T{stamp[:2]}:{stamp[2:]}:00Z")
    records = [assume(user(account, "alice"), f"arn:aws:iam::{account}:role/Ops", at + timedelta(seconds=i)) for i in range(3)]
    world.put_log(log_key(account, day, stamp, org=org, suffix=suffix), records)
    return [r["eventID"] for r in records]


def _poll_source(world: World) -> dict[str, object]:
    return {"type": "s3", "bucket": world.bucket, "poll_interval_seconds": 1, "start_days_back": 1}


def test_polling_resumes_from_its_checkpoint_after_a_restart(world: World) -> None:
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    long_ago = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y/%m/%d")
    _put(world, "111111111111", long_ago, "0100")  # before the first start: backfill's, not polling's
    first = _put(world, "111111111111", today, "0000") + _put(world, "222222222222", today, "0005", org="o-abcdefghij")
    config = world.config(source=_poll_source(world))
    assert world.run(config) == 0
    assert sorted(world.event_ids()) == sorted(first)

    second = _put(world, "111111111111", today, "0010") + _put(world, "222222222222", today, "0015", org="o-abcdefghij")
    assert world.run(config) == 0
    assert sorted(world.event_ids()) == sorted(first + second)  # each once: nothing read twice


def test_a_file_appearing_under_an_earlier_key_is_read_at_the_next_poll(world: World) -> None:
    """CloudTrail can write several files in one minute; their names end in a random suffix, so
    one written later may sort before a file already read."""
    today = datetime.now(UTC).strftime("%Y/%m/%d")
    first = _put(world, "111111111111", today, "0010", suffix="f" * 16)
    config = world.config(source={**_poll_source(world), "lookback_minutes": 5})
    assert world.run(config) == 0
    assert sorted(world.event_ids()) == sorted(first)

    same_minute = _put(world, "111111111111", today, "0010", suffix="0" * 16)
    within = _put(world, "111111111111", today, "0005", suffix="a" * 16)
    _put(world, "111111111111", today, "0004", suffix="b" * 16)  # beyond the lookback: polling cannot see it
    assert world.run(config) == 0
    assert sorted(world.event_ids()) == sorted(first + same_minute + within)  # the first file not read again

    assert world.run(config) == 0
    assert len(world.event_ids()) == len(first + same_minute + within)


@pytest.mark.parametrize("resume", [False, True])
def test_backfill_reads_exactly_the_range(world: World, resume: bool, capsys: pytest.CaptureFixture[str]) -> None:
    _put(world, "111111111111", "2026/03/29", "2355")
    inside = _put(world, "111111111111", "2026/03/30", "0000") + _put(world, "111111111111", "2026/03/31", "2355")
    inside += _put(world, "333333333333", "2026/03/31", "1200", org="o-abcdefghij")
    _put(world, "111111111111", "2026/04/01", "0000")
    config = str(world.config(source=_poll_source(world)))
    arguments = ["backfill", "--config", config, "--from", "2026-03-30", "--to", "2026-03-31", "--no-progress"]
    if resume:
        assert main(arguments) == 0
    capsys.readouterr()
    assert main(arguments) == 0
    assert sorted(world.event_ids()) == sorted(inside)
    summary = capsys.readouterr().err
    assert ("3 objects read (0 done before)" if not resume else "0 objects read (3 done before)") in summary


def test_backfill_shows_objects_records_rate_and_eta(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    inside = _put(world, "111111111111", "2026/03/30", "0000") + _put(world, "111111111111", "2026/03/30", "0005")
    config = str(world.config(source=_poll_source(world)))
    assert main(["backfill", "--config", config, "--from", "2026-03-30", "--to", "2026-03-30"]) == 0
    bar = capsys.readouterr().err.split("\r")[-1]
    # tqdm's last line: "backfill: 100%|...| 2/2 [00:00<00:00, 9.81obj/s, records=6]"
    assert re.search(r"backfill: 100%.* 2/2 \[\d\d:\d\d<00:00, +[\d.]+obj/s, records=6\]", bar), bar
    assert sorted(world.event_ids()) == sorted(inside)


def test_baseline_build_learns_a_range_from_s3_ships_nothing_and_keeps_its_own_position(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _put(world, "111111111111", "2026/03/29", "2355")
    inside = _put(world, "111111111111", "2026/03/30", "0900") + _put(world, "111111111111", "2026/03/31", "0900")
    config = str(world.config(source=_poll_source(world)))
    build = ["baseline", "build", "--config", config, "--from", "2026-03-30", "--to", "2026-03-31", "--no-progress"]
    assert main(build) == 0
    assert "baseline 2026-03-30..2026-03-31: 2 objects read (0 done before), 6 records, learnt, nothing shipped" \
        in capsys.readouterr().err
    assert world.event_ids() == []  # no sink was written
    assert main(["baseline", "show", "--config", config, "--json", "arn:aws:iam::111111111111:user/alice"]) == 0
    pair = orjson.loads(capsys.readouterr().out)["pairs"]["arn:aws:iam::111111111111:user/alice|" + ROLE]
    assert (pair["first_seen"], pair["days_seen"]) == ("2026-03-30T09:00:00Z", 2)
    assert sum(pair["daily_counts"].values()) == len(inside)  # each assumption once: the range, nothing else
    assert main(build) == 0  # resumed: its position is its own...
    assert "0 objects read (2 done before)" in capsys.readouterr().err
    # ...and not backfill's, which reads the range whole (the duplicate window, which the build
    # filled, then drops its records: build before the daemon's start, as docs/baseline.md says).
    assert main(["backfill", "--config", config, "--from", "2026-03-30", "--to", "2026-03-31", "--no-progress"]) == 0
    assert "2 objects read (0 done before)" in capsys.readouterr().err


def test_baseline_build_takes_files_or_a_range_not_both(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    config = str(world.config(source=_poll_source(world)))
    for arguments in (["--from", "2026-03-30"], ["--from", "2026-03-30", "--to", "2026-03-31", "AWSLogs"], []):
        assert main(["baseline", "build", "--config", config, *arguments]) == 2
        assert "give either PATH... (files) or both --from and --to (S3)" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["backfill"], ["baseline", "build"]])
def test_a_range_whose_bucket_cannot_be_listed_stops_with_the_bucket_named(
        world: World, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    config = str(world.config(source=_poll_source(world)))
    arguments = [*command, "--config", config, "--from", "2026-03-30", "--to", "2026-03-30", "--no-progress",
                 "--bucket", f"{world.bucket}-missing"]
    assert main(arguments) == 1
    err = capsys.readouterr().err
    assert f"stopped: listing s3://{world.bucket}-missing/ failed: " in err and "NoSuchBucket" in err
    assert "Traceback" not in err and world.event_ids() == []
