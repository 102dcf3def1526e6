"""Objects fetched concurrently are enriched in the order they were listed (backfill, S3 polling)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from forwarder.sources.s3poll import in_order
from forwarder.sources.turns import Turn


@pytest.mark.parametrize("skipped", [set(), {"k2", "k5"}])
def test_the_last_fetched_first_is_still_enriched_in_key_order(skipped: set[str]) -> None:
    keys = [f"k{n}" for n in range(8)]
    enriched: list[str] = []
    reported: list[str] = []
    fetched: list[str] = []
    lock = threading.Lock()

    def handle(key: str, turn: Turn) -> None:
        time.sleep(0.02 * (len(keys) - int(key[1:])))  # the later the key, the sooner its fetch ends
        with lock:
            fetched.append(key)
        if key in skipped:
            return None  # never reaches its enrichment (skipped, dead-lettered): the next goes all the same
        with turn:
            enriched.append(key)
        return None

    with ThreadPoolExecutor(4) as pool:
        in_order(pool, keys, handle, lambda key, _: reported.append(key), threading.Event(), 8)
    assert fetched[0] != "k0"  # the fetches did finish out of order
    assert enriched == [key for key in keys if key not in skipped]
    assert reported == keys


def test_a_failure_before_its_turn_blocks_no_one_and_is_raised() -> None:
    enriched: list[str] = []

    def handle(key: str, turn: Turn) -> None:
        if key == "k1":
            raise RuntimeError("S3 refused k1")
        with turn:
            enriched.append(key)

    with ThreadPoolExecutor(2) as pool, pytest.raises(RuntimeError, match="k1"):
        in_order(pool, ["k0", "k1", "k2", "k3"], handle, lambda *_: None, threading.Event(), 4)
    # The walk stops at the error; what had started behind it was not left waiting for k1's turn.
    assert enriched[0] == "k0" and enriched == sorted(enriched) and "k1" not in enriched
