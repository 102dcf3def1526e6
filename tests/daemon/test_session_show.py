"""``forwarder session show|list`` beside a running daemon: the demo story delivered through SQS,
the daemon's state in Redis (shared by several daemons) or SQLite (read beside its writer)."""

from __future__ import annotations

import gzip
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from aws_world import World, wait_until
from paths import REPO

from forwarder.config import load_config
from forwarder.state import open_store
from forwarder.usage import parse

DEMO = REPO / "forwarder" / "samples" / "demo"
BOB = "arn:aws:iam::111111111111:user/bob"
BOBS_BREAK_GLASS = "32cc2524-5648-44a2-a375-4bd754c8b94d"  # STORY.md scene b, the role owner's copy


def _issued_key(event_id: str) -> str:
    for path in DEMO.rglob("*_CloudTrail_*.json.gz"):
        for record in orjson.loads(gzip.decompress(path.read_bytes()))["Records"]:
            if record["eventID"] == event_id:
                return record["responseElements"]["credentials"]["accessKeyId"]
    raise AssertionError(f"{event_id} is not in the demo story")


def _session(config: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "forwarder", "session", *args, "--config", str(config)],
                          cwd=REPO, capture_output=True, timeout=60)


@pytest.mark.parametrize("state", ["redis", "sqlite"])
def test_session_show_and_list_read_the_running_daemons_store(world: World, state: str, request: pytest.FixtureRequest) -> None:
    demo = yaml.safe_load((REPO / "forwarder" / "samples" / "demo-config.yaml").read_text())
    stored = ({"type": "redis", "url": request.getfixturevalue("redis_url"), "key_prefix": f"t{uuid.uuid4().hex[:8]}:"}
              if state == "redis" else {"type": "sqlite", "path": str(world.tmp / "state.db")})
    config = world.config(state=stored, organization=demo["organization"], roles=demo["roles"])
    for path in sorted(DEMO.rglob("*.json.gz")):
        key = world.put_raw(path.relative_to(DEMO).as_posix(), path.read_bytes())
        world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    key = _issued_key(BOBS_BREAK_GLASS)

    daemon = world.spawn_logged(world.tmp / "daemon.log", "run", "--config", str(config))
    try:
        assert wait_until(lambda: world.queue_depth() == 0, 90, every=0.25), (world.tmp / "daemon.log").read_text()
        shown = _session(config, "show", key, "--json")
        listed = _session(config, "list", "--origin", BOB, "--at", "2026-03-31T14:45:00Z")
        missing = _session(config, "show", "ASIANOTISSUEDBYANY00")
        assert daemon.poll() is None  # read while it runs
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0

    assert shown.returncode == 0, shown.stderr.decode()
    session = orjson.loads(shown.stdout)
    assert session["origin"] == {"arn": BOB, "type": "IAMUser", "account_id": "111111111111", "identity_provider": None}
    assert [(h["role_arn"], h["account_id"], h["assumed_at"]) for h in session["hops"]] == [
        ("arn:aws:iam::222222222222:role/HumanOps", "222222222222", "2026-03-31T14:38:20Z"),
        ("arn:aws:iam::333333333333:role/BreakGlassAdministrator", "333333333333", "2026-03-31T14:40:05Z"),
    ]
    assert session["expires_at"] == "2026-03-31T15:40:05Z"
    assert session["clock"]["by"] == "stream" and session["live"] is False  # the stream has passed 15:40Z
    # Every call shipped with a temporary key is counted once, held ones included (counted on release).
    shipped = Counter(d["userIdentity"]["accessKeyId"] for d in world.documents()
                      if str(d["userIdentity"].get("accessKeyId", "")).startswith("ASIA") and "assumerole" in d)
    assert session["usage"]["calls"] == shipped[key] == 4, session["usage"]
    store = open_store(load_config(config).state, read_only=True)
    try:
        counted = {k: parse(v).calls for k, v in store.scan("usage")}
    finally:
        store.close()
    assert counted == dict(shipped)

    assert listed.returncode == 0, listed.stderr.decode()
    lines = listed.stdout.decode().splitlines()
    assert lines[0].startswith(f"2 live sessions with the origin {BOB} ")
    assert [line.split()[1].rsplit("/", 1)[1] for line in lines[1:]] == ["HumanOps", "BreakGlassAdministrator"]
    assert missing.returncode == 1 and missing.stdout == b""
    assert missing.stderr.decode().startswith("forwarder: ASIANOTISSUEDBYANY00: not in the state store")
