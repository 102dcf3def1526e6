"""The OpenSearch sink against the real test node: the Elasticsearch sink's promises, on OpenSearch.

The tests that need nothing of Elasticsearch are the Elasticsearch tests' own, imported here and
run against the OpenSearch node (the namespace gives the same calls): the demo story searchable,
one document per eventID on a resend (or an overwrite with op_type index), every public sample
indexed, a poisoned document dead-lettered while the rest of its batch is indexed, a data stream,
429 answers retried and then SinkError, the node stopped in the middle of a send and restarted
(indexed plus dead-lettered is what was sent). What OpenSearch does its own way is below.
"""

from __future__ import annotations

import uuid

import pytest
from os_node import Namespace
from test_sink import (  # noqa: F401 - collected here: the same tests against OpenSearch
    odd_shapes,
    story,
    test_429_answers_are_retried,
    test_429_until_the_retries_run_out_raises_sink_error,
    test_data_stream,
    test_demo_story_is_searchable,
    test_enriched_story_searchable_and_sent_twice_kept_once,
    test_index_op_type_overwrites_instead,
    test_node_stopped_mid_run_loses_nothing,
    test_poisoned_document_is_dead_lettered_and_the_rest_indexed,
    test_public_samples_index_without_a_mapping_error,
)


pytestmark = pytest.mark.opensearch


def test_a_value_over_the_term_limit_moves_its_object_aside(ns: Namespace, documents) -> None:
    """flat_object has no ignore_above: OpenSearch refuses a document with a value over 32766
    bytes; the sink sends it again with that object under aws.cloudtrail.unindexed, twice here
    (two such objects in one record). The shapes Elasticsearch takes index here too."""
    base = story()[1]
    huge = dict(base, eventID=str(uuid.uuid4()), requestParameters={"policy": "x" * 40_000, "bucketName": "kept"},
                additionalEventData={"note": "y" * 33_000})
    odd = odd_shapes(base)
    sink = ns.sink()
    assert [r.reason for r in sink.send(documents([huge, *odd])).rejected] == []
    assert ns.count() == 5
    kept = ns.client.get(index=f"{ns.prefix}-ct-2026.03.31", id=huge["eventID"])["_source"]
    assert "requestParameters" not in kept and "additionalEventData" not in kept
    assert kept["aws"]["cloudtrail"]["unindexed"]["requestParameters"] == huge["requestParameters"]
    assert kept["aws"]["cloudtrail"]["unindexed"]["additionalEventData"] == huge["additionalEventData"]
    assert kept["eventID"] == huge["eventID"] and kept["assumerole"]  # the rest as it was
    assert ns.search_ids({"term": {"requestParameters.bucketName": "b"}}) == {odd[0]["eventID"]}
    assert ns.search_ids({"term": {"responseElements": "bottom"}}) == {odd[3]["eventID"]}  # 40 deep
