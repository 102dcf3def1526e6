"""``forwarder session show|list`` on a state store filled by ``forwarder enrich --state`` from the
demo story (forwarder/samples/demo/STORY.md): who stands behind a key, with its hops and times."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from paths import REPO

from forwarder.cli import main
from forwarder.state.base import Writes
from forwarder.state.sqlite import SqliteStore
from forwarder.usage import add_call

SAMPLES = REPO / "forwarder" / "samples"
BOB = "arn:aws:iam::111111111111:user/bob"
HUMAN_OPS = "arn:aws:iam::222222222222:role/HumanOps"
BREAK_GLASS = "arn:aws:iam::333333333333:role/BreakGlassAdministrator"


def _config(tmp: Path, state: Path) -> Path:
    path = tmp / "forwarder.yaml"
    path.write_text(f"state: {{type: sqlite, path: {str(state)!r}}}\n")
    return path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The demo story's state file, through the real pipeline, and its enriched documents."""
    tmp = tmp_path_factory.mktemp("session")
    enrich = subprocess.run([sys.executable, "-m", "forwarder", "enrich", "--config", str(SAMPLES / "demo-config.yaml"),
                             "--state", str(tmp / "state.db"), str(SAMPLES / "demo")], cwd=REPO, capture_output=True,
                            check=True)
    return _config(tmp, tmp / "state.db"), [orjson.loads(line) for line in enrich.stdout.splitlines()]


def session(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["session", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _assumptions(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d["assumerole"] for d in docs if "role" in d["assumerole"] and d["assumerole"]["session"]["access_key_id"]]


def _bobs_break_glass_key(docs: list[dict[str, Any]]) -> str:
    keys = {a["session"]["access_key_id"] for a in _assumptions(docs)
            if a["role"]["arn"] == BREAK_GLASS and a["chain"]["origin"]["arn"] == BOB}
    assert len(keys) == 1
    return keys.pop()


def test_show_names_bob_behind_the_break_glass_session_with_hops_and_times(
        demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    key = _bobs_break_glass_key(docs)
    status, out, err = session(capsys, "show", key, "--config", str(config))
    assert status == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{key}  {BREAK_GLASS}"
    assert "  issued to    arn:aws:sts::222222222222:assumed-role/HumanOps/bob (AssumedRole, account 222222222222)" in lines
    assert "  issued at    2026-03-31T14:40:05Z" in lines
    assert any(line.startswith("  expires      2026-03-31T15:40:05Z (expired: the stream has reached ") for line in lines)
    assert f"  origin       {BOB} (IAMUser, account 111111111111)" in lines
    chain = lines.index("  chain        2 role assumptions from the origin:")
    assert lines[chain + 1].startswith(f"    1. 2026-03-31T14:38:20Z  {HUMAN_OPS}  (account 222222222222, key ASIA")
    assert lines[chain + 2] == f"       by {BOB} (IAMUser, account 111111111111)"
    assert lines[chain + 3] == f"    2. 2026-03-31T14:40:05Z  {BREAK_GLASS}  (account 333333333333, key {key})"


def test_show_json(demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    key = _bobs_break_glass_key(docs)
    status, out, _ = session(capsys, "show", key, "--json", "--config", str(config))
    assert status == 0
    shown = orjson.loads(out)
    assert shown["origin"] == {"arn": BOB, "type": "IAMUser", "account_id": "111111111111", "identity_provider": None}
    assert shown["resolved"] is True and shown["unresolved_because"] is None
    assert shown["caller"]["arn"] == "arn:aws:sts::222222222222:assumed-role/HumanOps/bob"
    assert (shown["issued_at"], shown["expires_at"]) == ("2026-03-31T14:40:05Z", "2026-03-31T15:40:05Z")
    assert shown["live"] is False and shown["clock"]["by"] == "stream"
    assert [(h["role_arn"], h["account_id"], h["assumed_at"]) for h in shown["hops"]] == [
        (HUMAN_OPS, "222222222222", "2026-03-31T14:38:20Z"), (BREAK_GLASS, "333333333333", "2026-03-31T14:40:05Z")]
    assert shown["hops"][0]["caller"]["arn"] == BOB and shown["hops"][-1]["access_key_id"] == key


def test_show_tells_the_same_origin_as_the_enriched_events_for_every_key(
        demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    chains = {a["session"]["access_key_id"]: a["chain"] for a in _assumptions(docs) if not a["failed"]}
    assert len(chains) > 40
    for key, chain in chains.items():
        status, out, _ = session(capsys, "show", key, "--json", "--config", str(config))
        assert status == 0, key
        shown = orjson.loads(out)
        assert shown["resolved"] is chain["resolved"], key
        if chain["resolved"]:
            assert shown["origin"] == chain["origin"], key
            assert [h["role_arn"] for h in shown["hops"]] == chain["hops"], key
        else:
            assert shown["origin"] is None and shown["unresolved_because"], key


def test_an_unresolved_cross_account_caller_is_said_so(
        demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    vendor = next(a["session"]["access_key_id"] for a in _assumptions(docs) if a["role"]["name"] == "VendorIntegrationRole")
    status, out, _ = session(capsys, "show", vendor, "--config", str(config))
    assert status == 0
    assert "  issued to    an identity of account 999999999999 (AWSAccount)" in out.splitlines()
    assert ("  origin       unknown: the caller's copy of the cross-account call has not been read: "
            "only its account 999999999999 is known") in out.splitlines()


def test_a_key_not_in_the_store_is_one_line_and_exit_1(
        demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = demo
    # The LegacyBatchJob session of scene i: its calls are logged, its assumption is not.
    status, out, err = session(capsys, "show", "ASIAD25WXTNX8DIJ4WPA", "--config", str(config))
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("forwarder: ASIAD25WXTNX8DIJ4WPA: not in the state store")


def test_a_missing_state_file_is_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, tmp_path / "none.db")
    status, _, err = session(capsys, "show", "ASIAD25WXTNX8DIJ4WPA", "--config", str(config))
    assert status == 2 and "cannot be read" in err
    assert not (tmp_path / "none.db").exists()


def test_list_the_live_sessions_of_a_person(demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    key = _bobs_break_glass_key(docs)
    status, out, _ = session(capsys, "list", "--origin", BOB, "--at", "2026-03-31T14:45:00Z", "--config", str(config))
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"2 live sessions with the origin {BOB} (at 2026-03-31T14:45:00Z, the time given):"
    assert lines[1].split()[1:3] == [HUMAN_OPS, "depth"] and lines[2].split()[:2] == [key, BREAK_GLASS]
    # Before bob's HumanOps session began, and after both expired: nothing.
    for moment in ("2026-03-31T14:38:00Z", "2026-03-31T15:41:00Z"):
        status, out, _ = session(capsys, "list", "--origin", BOB, "--at", moment, "--config", str(config))
        assert status == 0 and out.startswith(f"No live session has the origin {BOB} (at {moment}")
    # By default the point the stream has reached (17:54Z, past every session of bob).
    status, out, _ = session(capsys, "list", "--origin", BOB, "--config", str(config))
    assert out == f"No live session has the origin {BOB} (the stream has reached 2026-03-31T17:54:18Z).\n"


def test_list_json_and_the_stream_clock(demo: tuple[Path, list[dict[str, Any]]], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = demo
    audit = "repo:example/app:pull_request"  # scene f: assumed SecurityAudit at 17:52Z, live at the end of the story
    status, out, _ = session(capsys, "list", "--origin", audit, "--json", "--config", str(config))
    assert status == 0
    listed = orjson.loads(out)
    assert (listed["origin"], listed["at"], listed["clock"]) == (audit, "2026-03-31T17:54:18Z", "stream")
    assert [s["role"]["arn"] for s in listed["sessions"]] == ["arn:aws:iam::333333333333:role/SecurityAudit"]
    assert listed["sessions"][0]["origin"]["type"] == "WebIdentityUser" and listed["sessions"][0]["live"] is True


def test_list_on_a_store_with_no_stream_uses_the_wall_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    SqliteStore(tmp_path / "state.db").close()
    status, out, _ = session(capsys, "list", "--origin", BOB, "--config", str(_config(tmp_path, tmp_path / "state.db")))
    assert status == 0 and "by the wall clock: no stream read yet" in out


def test_show_prints_the_calls_counted_for_the_key(
        demo: tuple[Path, list[dict[str, Any]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config, docs = demo
    key = _bobs_break_glass_key(docs)
    shutil.copy(config.parent / "state.db", tmp_path / "state.db")
    db = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    db.execute("DELETE FROM kv WHERE kind='usage'")  # only the calls below, whatever enrich counted
    db.close()
    store = SqliteStore(tmp_path / "state.db")
    calls = None
    for moment, ip, agent in [(1774968065.0, "203.0.113.50", "aws-cli/2.15.0"), (1774968365.0, "198.51.100.7", None),
                              (1774968125.0, "203.0.113.50", "Boto3/1.34")]:
        calls = add_call(calls, moment, ip, agent)
    assert calls is not None
    store.commit(Writes(usage={key: calls}))
    store.close()
    config = _config(tmp_path, tmp_path / "state.db")
    status, out, _ = session(capsys, "show", key, "--config", str(config))
    assert status == 0
    lines = out.splitlines()
    calls = lines.index("  calls        3, first 2026-03-31T14:41:05Z, last 2026-03-31T14:46:05Z")
    assert lines[calls + 1:] == [
        "  from         2026-03-31T14:41:05Z  203.0.113.50",
        "               2026-03-31T14:46:05Z  198.51.100.7",
        "  user agents  2026-03-31T14:41:05Z  aws-cli/2.15.0",
        "               2026-03-31T14:42:05Z  Boto3/1.34",
    ]
    status, out, _ = session(capsys, "list", "--origin", BOB, "--at", "2026-03-31T14:45:00Z", "--json", "--config", str(config))
    used = next(s["usage"] for s in orjson.loads(out)["sessions"] if s["access_key_id"] == key)
    assert (used["calls"], used["last_call"], used["more_source_ips"]) == (3, "2026-03-31T14:46:05Z", False)
    assert [entry["ip"] for entry in used["source_ips"]] == ["203.0.113.50", "198.51.100.7"]
