"""The Elasticsearch sink against the real test node.

The tests that use only the namespace's interface (``ns.sink``, ``ns.count``, ``ns.search_ids``,
``ns.client.get``) run against the OpenSearch node too (tests/opensearch/test_os_sink.py imports
them): both sinks keep the same promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import orjson
import pytest
from es_node import REPO, Namespace
from search_space import fresh_copies, send_across_a_restart
from servers.es_front import NodeFront

from cloudtrail import assume, call, issued_key, session_identity, user
from forwarder.document import Document
from forwarder.sinks.base import SinkError
from paths import DEMO_CONFIG

pytestmark = pytest.mark.elasticsearch

DEMO = REPO / "forwarder" / "samples" / "demo"


def story() -> list[dict[str, Any]]:
    """alice assumes a role in another account and uses it; a stranger's assumption is external."""
    from datetime import datetime, timezone

    at = datetime(2026, 3, 31, 7, 12, tzinfo=timezone.utc)
    first = assume(user("111111111111", "alice"), "arn:aws:iam::222222222222:role/Deploy", at)
    session = session_identity("arn:aws:iam::222222222222:role/Deploy", issued_key(first), first["eventTime"])
    return [first, call(session, at.replace(minute=13)), call(session, at.replace(hour=9))]


def demo_documents() -> list[Document]:
    """`python -m forwarder enrich` over the shipped demo story, read back as Documents."""
    run = subprocess.run(
        [sys.executable, "-m", "forwarder", "enrich", "--config", str(DEMO_CONFIG), str(DEMO)],
        capture_output=True, cwd=REPO, timeout=300,
    )
    assert run.returncode == 0, run.stderr.decode()
    documents = []
    for line in run.stdout.splitlines():
        record = orjson.loads(line)
        assumerole = record.pop("assumerole", None)
        documents.append(Document(record, assumerole, "demo", orjson.dumps(record)))
    return documents


def stored(documents: list[Document]) -> int:
    """How many documents Elasticsearch should hold: one per eventID, and each one without."""
    return len({doc.event_id for doc in documents if doc.event_id}) + sum(1 for doc in documents if not doc.event_id)


def ids_where(documents: list[Document], test: Any) -> set[str]:
    return {doc.event_id for doc in documents if doc.event_id and test(doc.as_dict())}


def test_demo_story_is_searchable(ns: Namespace) -> None:
    if not DEMO.exists():
        pytest.skip("forwarder/samples/demo is not there")
    documents = demo_documents()
    sink = ns.sink()
    assert sink.send(documents).rejected == []
    assert ns.count() == stored(documents)

    def origin(doc: dict[str, Any]) -> Any:
        return ((doc.get("assumerole") or {}).get("chain") or {}).get("origin") or {}

    alice = "arn:aws:iam::111111111111:user/alice"
    expected = ids_where(documents, lambda d: origin(d).get("arn") == alice)
    assert len(expected) > 3
    assert ns.search_ids({"term": {"assumerole.chain.origin.arn": alice}}) == expected

    external = ids_where(documents, lambda d: ((d.get("assumerole") or {}).get("caller") or {}).get("external") is True)
    assert "af1360fb-2a41-44c7-9eba-40aecc1e9a83" in external  # the outside vendor of the story
    assert ns.search_ids({"term": {"assumerole.caller.external": True}}) == external

    morning = ids_where(documents, lambda d: "2026-03-31T07:00:00Z" <= d["eventTime"] < "2026-03-31T08:00:00Z")
    assert morning
    window = {"range": {"@timestamp": {"gte": "2026-03-31T07:00:00Z", "lt": "2026-03-31T08:00:00Z"}}}
    assert ns.search_ids(window) == morning
    # The role of an assumption, inside the flattened requestParameters, as a Sigma rule asks it.
    role = "arn:aws:iam::333333333333:role/BreakGlassAdministrator"
    assert ns.search_ids({"term": {"requestParameters.roleArn": role}}) == ids_where(
        documents, lambda d: (d.get("requestParameters") or {}).get("roleArn") == role
    )


def test_enriched_story_searchable_and_sent_twice_kept_once(ns: Namespace, documents) -> None:
    docs = documents(story())
    sink = ns.sink()
    assert sink.send(docs).rejected == []
    assert sink.send(docs).rejected == []  # a resend after a crash: 409 per document, all accepted
    assert ns.count() == 3
    origin = "arn:aws:iam::111111111111:user/alice"
    assert ns.search_ids({"term": {"assumerole.chain.origin.arn": origin}}) == {d.event_id for d in docs}
    assert ns.search_ids({"range": {"@timestamp": {"gte": "2026-03-31T07:12:00Z", "lte": "2026-03-31T07:13:00Z"}}}) == {
        docs[0].event_id, docs[1].event_id
    }
    indices = set(ns.client.indices.get(index=f"{ns.prefix}-ct-*"))
    assert indices == {f"{ns.prefix}-ct-2026.03.31"}  # named from the event's date


def test_index_op_type_overwrites_instead(ns: Namespace, documents) -> None:
    docs = documents(story())
    sink = ns.sink(op_type="index")
    sink.send(docs)
    sink.send(docs)
    assert ns.count() == 3
    version = ns.client.get(index=f"{ns.prefix}-ct-2026.03.31", id=docs[0].event_id)["_version"]
    assert version == 2


def test_public_samples_index_without_a_mapping_error(ns: Namespace, enriched_public: list[Document]) -> None:
    sink = ns.sink(batch_max_docs=500)
    delivery = sink.send(enriched_public)
    assert [r.reason for r in delivery.rejected] == []
    assert ns.count() == stored(enriched_public)
    # What the template promises: CloudTrail keys queryable under their own names.
    assert ns.count({"term": {"eventName": "AssumeRole"}}) == stored(
        [doc for doc in enriched_public if doc.record.get("eventName") == "AssumeRole"]
    )
    assert ns.count({"exists": {"field": "assumerole.chain.depth"}}) > 0
    assert ns.count({"exists": {"field": "source.ip"}}) > 0


def poisoned(document: Document) -> Document:
    """``document`` with a value where the template maps an object: what both Elasticsearch and
    OpenSearch refuse (OpenSearch's ignore_malformed takes an object where a keyword is mapped)."""
    document.assumerole = {**(document.assumerole or {}), "role": "not an object"}
    return document


def test_poisoned_document_is_dead_lettered_and_the_rest_indexed(ns: Namespace, documents) -> None:
    docs = documents(story())
    poison = poisoned(docs[1])
    sink = ns.sink()
    delivery = sink.send(docs)
    assert [r.document.event_id for r in delivery.rejected] == [poison.event_id]
    assert "assumerole.role" in delivery.rejected[0].reason
    assert ns.search_ids({"match_all": {}}) == {docs[0].event_id, docs[2].event_id}
    ns.client.indices.refresh(index=ns.dead_letter)
    entry = ns.client.get(index=ns.dead_letter, id=poison.event_id)["_source"]
    assert entry["error"]["type"] == ns.parsing_error
    assert entry["labels"]["target_index"] == f"{ns.prefix}-ct-2026.03.31"
    assert json.loads(entry["event"]["original"])["assumerole"]["role"] == "not an object"


def odd_shapes(base: dict[str, Any]) -> list[dict[str, Any]]:
    """Copies of ``base`` with what CloudTrail and its exporters vary: 40-deep nesting, a list of
    mixed types, the same key as object and as string, unknown keys, a string where objects go;
    the first has requestParameters.bucketName "b"."""
    deep: Any = "bottom"
    for _ in range(40):
        deep = {"level": deep}
    return [
        dict(base, eventID=str(uuid.uuid4()), requestParameters={"bucketName": "b", "x": {"y": 1}}, futureKey={"obj": 1}),
        dict(base, eventID=str(uuid.uuid4()), requestParameters={"bucketName": {"nested": True}, "x": "flat"}, futureKey="text"),
        dict(base, eventID=str(uuid.uuid4()), resources=["a string, as one exporter writes it"], readOnly="True"),
        dict(base, eventID=str(uuid.uuid4()), responseElements=deep, additionalEventData={"a": [1, "two", {"three": 3.0}]}),
    ]


def test_variable_and_oversized_cloudtrail_values_index(ns: Namespace, documents) -> None:
    base = story()[1]
    huge = dict(base, eventID=str(uuid.uuid4()), requestParameters={"policy": "x" * 40_000, "many": {f"k{i}": "v" * 100 for i in range(400)}})
    odd = odd_shapes(base)
    sink = ns.sink()
    assert [r.reason for r in sink.send(documents([huge, *odd])).rejected] == []
    assert ns.count() == 5
    stored = ns.client.get(index=f"{ns.prefix}-ct-2026.03.31", id=huge["eventID"])["_source"]
    assert stored["requestParameters"]["policy"] == "x" * 40_000  # kept whole in _source
    assert ns.search_ids({"term": {"requestParameters.bucketName": "b"}}) == {odd[0]["eventID"]}


def test_data_stream(ns: Namespace, documents) -> None:
    docs = documents(story())
    sink = ns.sink(data_stream=f"{ns.prefix}-ds")
    assert sink.send(docs).rejected == []
    assert sink.send(docs).rejected == []
    assert ns.count(index=f"{ns.prefix}-ds") == 3
    backing = list(ns.client.indices.get(index=f"{ns.prefix}-ds"))
    assert len(backing) == 1 and backing[0].startswith(f".ds-{ns.prefix}-ds-")


def test_429_answers_are_retried(ns: Namespace, documents) -> None:
    docs = documents(story())
    ns.sink()  # installs the templates directly on the node
    with NodeFront(ns.url, reject_bulk=3) as proxy:
        sink = ns.sink(setup=False, hosts=[proxy.url], max_retries=5)
        assert sink.send(docs).rejected == []
        assert proxy.rejected == 3 and proxy.forwarded_bulk == 1
    assert ns.count() == 3


def test_429_until_the_retries_run_out_raises_sink_error(ns: Namespace, documents) -> None:
    docs = documents(story())
    ns.sink()
    with NodeFront(ns.url, reject_bulk=1000) as proxy:
        sink = ns.sink(setup=False, hosts=[proxy.url], max_retries=2)
        with pytest.raises(SinkError, match=r"3 of 3 documents not accepted .* after 3 attempts: es_rejected_execution"):
            sink.send(docs)
        assert proxy.rejected == 3
    assert ns.count() == 0


def test_node_stopped_mid_run_loses_nothing(ns: Namespace, enriched_public: list[Document], documents) -> None:
    """in = delivered + dead-lettered, with the node gone in the middle of a send of the public
    samples (four times, with fresh eventIDs: long enough to be cut) and one poisoned document."""
    if os.environ.get(ns.existing):
        pytest.skip(f"{ns.existing} names a cluster these tests must not stop")
    poison = poisoned(documents(story())[1])
    docs = fresh_copies([doc for doc in enriched_public if doc.event_id], 4) + [poison]
    sink = ns.sink(batch_max_docs=50, max_retries=30, retry_initial_seconds=0.2, retry_max_seconds=2)
    rejected = send_across_a_restart(sink, docs, ns.count, ns.node, ns.url).rejected
    assert [r.document.event_id for r in rejected] == [poison.event_id]
    assert ns.count() + len(rejected) == stored(docs)
    ns.client.indices.refresh(index=ns.dead_letter)
    assert ns.client.count(index=ns.dead_letter)["count"] == 1
