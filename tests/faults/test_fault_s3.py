"""S3 failing as it does, through a fault-injecting front (tests/servers/s3_front.py): 500
InternalError, 503 SlowDown, connection resets and bodies cut short, some few enough for the SDK's
own retries, some more. Every record is delivered once the faults pass (the forwarder reads the
object again), and each transient error is a WARNING naming the object: no ERROR, no traceback."""

from __future__ import annotations


import orjson
from aws_world import World
from ledger import Ledger, Start, check, with_settings
from servers.s3_front import INTERNAL_ERROR, RESET, SLOW_DOWN, TRUNCATE, FaultFront

# The CRT's S3 client (forwarder/sources/s3get.py) retries one GetObject up to 5 times
# (s3get.RETRIES, not counting the first attempt), a body cut short as well as an error or a
# reset: 2 faults pass inside the SDK, 6 reach the forwarder.
WITHIN_THE_SDK = [[INTERNAL_ERROR] * 2, [SLOW_DOWN] * 2, [RESET] * 2, [TRUNCATE] * 2, [TRUNCATE, RESET]]
TO_THE_FORWARDER = [[INTERNAL_ERROR] * 6, [SLOW_DOWN] * 6, [RESET] * 6, [TRUNCATE] * 6,
                    [TRUNCATE, RESET, SLOW_DOWN, TRUNCATE, INTERNAL_ERROR, TRUNCATE]]


def test_transient_s3_faults_are_retried_as_warnings_and_lose_nothing(world: World, ledger: Ledger, daemons: Start,
                                                                       moto_url: str) -> None:
    keys = ledger.put(12, 20)
    faulted = dict(zip(keys, WITHIN_THE_SDK + TO_THE_FORWARDER))
    with FaultFront(moto_url) as front:
        for key, faults in faulted.items():
            front.plan(key, faults)
        config = with_settings(world.config(), "source", endpoint_url=front.url)
        ledger.notify(keys)
        run = daemons(config, "--exit-when-idle", "6")
        code = run.wait(180)
    assert front.pending() == 0, f"faults not served: the test did not test them ({front.served})"
    check(ledger.tally_ndjson([world.output], [world.dead_letter]), world, {run: code})
    errors = run.logged(levels=("ERROR", "CRITICAL"))
    assert not errors, f"transient S3 errors logged as ERROR: {errors[:2]}"
    warnings = [orjson.dumps(entry).decode() for entry in run.logged(levels=("WARNING",))]
    for key in list(faulted)[len(WITHIN_THE_SDK):]:
        assert any(key in line for line in warnings), f"no WARNING names {key}"
