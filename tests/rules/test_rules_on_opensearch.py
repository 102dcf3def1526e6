"""Proof on real data, on OpenSearch: each rule converted for OpenSearch (pySigma-backend-opensearch
with the forwarder's pipeline), run on the real OpenSearch node, returns exactly the events that
must alert (the demo story's and the scenario's, the same expectations as on Elasticsearch), and
each burst's bucket-level monitor, run as OpenSearch Alerting runs it (its search at every
``period_end`` of its schedule), triggers for its burst's group and no other."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from opensearchpy import OpenSearch
from search_space import indexed_stories
from test_rules_on_elasticsearch import DEMO_BURSTS, _base, check_queries, demo_expected

from forwarder.document import Document
from forwarder.rules.convert import Converted, convert
from paths import REPO

sys.path.insert(0, str(REPO / "tests" / "opensearch"))

from os_node import Namespace, os_url  # noqa: E402,F401

pytestmark = pytest.mark.opensearch
TRIGGER = re.compile(r"params\.event_count >= (\d+)")


@pytest.fixture(scope="module")
def os_indexed(os_url: str, demo_docs: list[Document],  # noqa: F811
               scenario: tuple[list[Document], dict[str, set[str]]]) -> Iterator[dict[str, Namespace]]:
    """The demo story and the scenario, each in its own namespace on the node, through the real sink."""
    client = OpenSearch(os_url, timeout=60)
    yield from indexed_stories(lambda: Namespace(os_url, client), {"demo": demo_docs, "scenario": scenario[0]})
    client.close()


def _search(space: Namespace, body: dict[str, Any]) -> dict[str, Any]:
    return space.client.search(index=f"{space.prefix}-ct-*", body=body)


def _found(space: Namespace, query: str) -> set[str]:
    body = {"query": {"query_string": {"query": query, "analyze_wildcard": True}}, "size": 1000, "_source": ["eventID"]}
    return {hit["_source"]["eventID"] for hit in _search(space, body)["hits"]["hits"]}


def _converted(rules: Path) -> list[Converted]:
    index = ("fwtest-*",)
    return convert(rules / "enriched", "opensearch", index=index).results + convert(rules / "raw", "opensearch", index=index).results


def _check_queries(space: Namespace, rules: Path, expected: dict[str, set[str]]) -> None:
    check_queries(_converted(rules), lambda query: _found(space, query), expected)


def _epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _check_monitors(space: Namespace, rules: Path, docs: list[Document], expected_base: dict[str, set[str]],
                    bursts: dict[str, list[str]]) -> None:
    """Each monitor as Alerting runs it: its search with ``{{period_end}}`` at every tick of its
    schedule (ticks on the interval's multiples) while its base rule's events are in reach."""
    monitors = [c for c in _converted(rules) if isinstance(c.outputs[0], dict)]
    assert {c.rule.name for c in monitors} == set(bursts)
    times = {doc.event_id: _epoch_ms(doc.as_dict()["eventTime"]) for doc in docs}
    for converted in monitors:
        monitor = converted.outputs[0]
        assert monitor["monitor_type"] == "bucket_level_monitor" and monitor["inputs"][0]["search"]["indices"] == ["fwtest-*"]
        search = orjson.dumps(monitor["inputs"][0]["search"]["query"]).decode()
        trigger = monitor["triggers"][0]["bucket_level_trigger"]
        assert trigger["condition"]["parent_bucket_path"] == "groups"
        found = TRIGGER.fullmatch(trigger["condition"]["script"]["source"])
        assert found, trigger["condition"]["script"]
        minimum = int(found[1])
        base = expected_base[_base(converted)]
        time_range, query = monitor["inputs"][0]["search"]["query"]["query"]["bool"]["filter"]
        assert _found(space, query["query_string"]["query"]) == base
        interval = monitor["schedule"]["period"]["interval"] * 60_000
        window = int(re.fullmatch(r"\{\{period_end\}\}\|\|-(\d+)s", time_range["range"]["@timestamp"]["gte"])[1]) * 1000  # type: ignore[index]
        ticks = sorted({tick for event in base for tick in range((times[event] // interval + 1) * interval,
                                                                  times[event] + window + interval, interval)})
        alerting = set()
        for tick in ticks:
            answer = _search(space, orjson.loads(search.replace("{{period_end}}", str(tick))))
            alerting |= {bucket["key"][next(iter(bucket["key"]))] for bucket in answer["aggregations"]["groups"]["buckets"]
                         if bucket["doc_count"] >= minimum}
        assert sorted(alerting) == bursts[converted.rule.name], converted.rule.name


def test_demo_story_queries(os_indexed: dict[str, Namespace], demo_rules: Path, demo_docs: list[Document]) -> None:
    _check_queries(os_indexed["demo"], demo_rules, demo_expected(demo_docs))


def test_demo_story_monitors_find_daves_burst_only(os_indexed: dict[str, Namespace], demo_rules: Path,
                                                  demo_docs: list[Document]) -> None:
    _check_monitors(os_indexed["demo"], demo_rules, demo_docs, demo_expected(demo_docs), DEMO_BURSTS)


def test_scenario_queries(os_indexed: dict[str, Namespace], scenario_rules: Path,
                          scenario: tuple[list[Document], dict[str, set[str]]]) -> None:
    _check_queries(os_indexed["scenario"], scenario_rules, scenario[1])


def test_scenario_monitors_find_eves_and_probers_bursts(os_indexed: dict[str, Namespace], scenario_rules: Path,
                                                        scenario: tuple[list[Document], dict[str, set[str]]]) -> None:
    from scenario import BURSTS

    _check_monitors(os_indexed["scenario"], scenario_rules, scenario[0], scenario[1], BURSTS)


def test_a_flat_object_key_needs_the_rewrite(os_indexed: dict[str, Namespace], demo_docs: list[Document]) -> None:
    """What the pipeline's flat_object rewrite is for: query_string matches a wildcard in the middle
    of a flat_object key's value only through the object's _valueAndPath."""
    space = os_indexed["demo"]
    role = "arn:aws:iam::333333333333:role/BreakGlassAdministrator"
    expected = {doc.event_id for doc in demo_docs if (doc.as_dict().get("requestParameters") or {}).get("roleArn") == role}
    assert expected
    assert _found(space, "requestParameters.roleArn:arn\\:aws\\:iam\\:\\:333333333333\\:role\\/BreakGlassAdministrator") == expected
    assert _found(space, "requestParameters.roleArn:arn\\:aws\\:iam\\:\\:*\\:role\\/BreakGlassAdministrator") == set()
    assert _found(space, "requestParameters._valueAndPath:requestParameters.roleArn\\=arn\\:aws\\:iam\\:\\:*\\:role\\/"
                         "BreakGlassAdministrator") == expected
