"""Real records from ../shared/data: counts that a reader of the sources can check by hand."""

from collections import Counter
from pathlib import Path

import orjson
import pytest

from forwarder.cli import main
from cloudtrail import without_baseline
from paths import DATA

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"public samples not present at {DATA}")


def enrich(capsys: pytest.CaptureFixture[str], *paths: Path) -> list[dict]:
    assert main(["enrich", *map(str, paths)]) == 0
    return [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_invictus_failures_and_service_linked_roles(capsys: pytest.CaptureFixture[str]) -> None:
    docs = enrich(capsys, DATA / "corpus" / "invictus-ir-aws-dataset.json")
    assumptions = [d["assumerole"] for d in docs if "role" in d["assumerole"]]
    assert len(docs) == 119 and len(assumptions) == 49
    assert Counter(a["error_code"] for a in assumptions if a["failed"]) == {"AccessDenied": 13}
    assert sum(a["role"]["service_linked"] for a in assumptions) == 20
    assert all(a["caller"]["type"] == "AWSService" for a in assumptions if a["role"]["service_linked"])
    follow_on = [d["assumerole"] for d in docs if "role" not in d["assumerole"]]
    assert len(follow_on) == 70 and all(f["chain"]["resolved"] for f in follow_on)


def test_whole_delivery_files_select_the_same_records(capsys: pytest.CaptureFixture[str]) -> None:
    corpus = {d["eventID"]: d for d in enrich(capsys, DATA / "corpus" / "invictus-ir-aws-dataset.json")}
    delivered = {d["eventID"]: d for d in enrich(capsys, DATA / "invictus-aws-dataset")}
    assert all(without_baseline(delivered[event_id]["assumerole"]) == without_baseline(doc["assumerole"]) for event_id, doc in corpus.items())
    # Beside them, the calls of two IAM users' console sessions: signed with temporary (ASIA) keys
    # that no logged STS call issued, the user itself stands behind them.
    console = [doc for event_id, doc in delivered.items() if event_id not in corpus]
    assert len(console) == 563
    assert {doc["userIdentity"]["userName"] for doc in console} == {"bert-jan", "benjamin"}
    for doc in console:
        identity, chain = doc["userIdentity"], doc["assumerole"]["chain"]
        assert identity["type"] == "IAMUser" and identity["accessKeyId"].startswith("ASIA")
        assert without_baseline(doc["assumerole"])["session"] == {"access_key_id": identity["accessKeyId"]}
        assert chain["origin"]["arn"] == identity["arn"] and chain["depth"] == 0 and chain["resolved"] is True
    assert sum(doc.get("sessionCredentialFromConsole") == "true" for doc in console) == 256


def test_aws_documentation_cross_account_pair(capsys: pytest.CaptureFixture[str]) -> None:
    docs = enrich(capsys, DATA / "corpus" / "awsdocs-iam-user-guide-examples.json")
    pair = [d for d in docs if d.get("sharedEventID") == "bEXAMPLE-efea-4a70-b951-19a88EXAMPLE"]
    assert len(pair) == 2
    full, owner = sorted(pair, key=lambda d: d["userIdentity"]["type"] == "AWSAccount")
    assert owner["userIdentity"]["type"] == "AWSAccount"
    for doc in pair:
        ar = doc["assumerole"]
        assert ar["caller"]["arn"] == "arn:aws:iam::777788889999:user/JohnDoe" and ar["caller"]["type"] == "IAMUser"
        assert ar["cross_account"] is True and ar["chain"]["origin"]["arn"] == ar["caller"]["arn"]
    # The documented pair names the role account as recipient only on the caller's copy.
    assert [full["assumerole"]["primary"], owner["assumerole"]["primary"]] == [True, False]


def test_denials_with_null_request_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    docs = enrich(capsys, DATA / "corpus" / "stratus-red-team.json")
    denied = [d for d in docs if "role" in d["assumerole"] and d["assumerole"]["failed"]]
    assert denied and all(d["requestParameters"] is None for d in denied)
    assert all(d["assumerole"]["role"]["arn"] for d in denied)  # named in the error message


def test_logstash_export_with_timestamp(capsys: pytest.CaptureFixture[str]) -> None:
    docs = enrich(capsys, DATA / "corpus" / "otrf-security-datasets-ec2-proxy-s3-exfiltration.json")
    assert docs and all("@timestamp" in d and "eventTime" not in d for d in docs)
    calls = [d for d in docs if "role" not in d["assumerole"]]
    assert calls and all(c["assumerole"]["chain"]["origin"]["arn"] == "ec2.amazonaws.com" for c in calls)
