"""Where a poll lists again from: ``lookback`` before the checkpoint's minute, across days."""

from datetime import timedelta

from forwarder.sources.s3poll import relist_from

FOLDER = "logs/AWSLogs/o-abcdefghij/111111111111/CloudTrail/eu-west-1"


def test_lists_again_from_the_lookback_before_the_checkpoints_minute() -> None:
    key = f"{FOLDER}/2026/03/31/111111111111_CloudTrail_eu-west-1_20260331T1210Z_Ab3dEf6hIj9kLm2n.json.gz"
    start = relist_from(key, timedelta(minutes=15))
    assert start == f"{FOLDER}/2026/03/31/111111111111_CloudTrail_eu-west-1_20260331T1155Z"
    assert start < f"{FOLDER}/2026/03/31/111111111111_CloudTrail_eu-west-1_20260331T1155Z_0000000000000000.json.gz"
    assert start > f"{FOLDER}/2026/03/31/111111111111_CloudTrail_eu-west-1_20260331T1154Z_zzzzzzzzzzzzzzzz.json.gz"


def test_the_lookback_reaches_into_the_day_before() -> None:
    key = f"{FOLDER}/2026/03/01/111111111111_CloudTrail_eu-west-1_20260301T0005Z_Ab3dEf6hIj9kLm2n.json.gz"
    assert relist_from(key, timedelta(minutes=15)) == f"{FOLDER}/2026/02/28/111111111111_CloudTrail_eu-west-1_20260228T2350Z"


def test_a_name_that_is_not_cloudtrails_lists_after_itself() -> None:
    key = f"{FOLDER}/2026/03/31/copied-by-hand.json.gz"
    assert relist_from(key, timedelta(minutes=15)) == key
    assert relist_from(key, timedelta(0)) == key
