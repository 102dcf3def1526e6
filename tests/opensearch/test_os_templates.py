"""OpenSearch's templates, generated from the catalogue, and `forwarder setup opensearch` on the node."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from os_node import Namespace

from forwarder.catalogue import load_catalogue
from forwarder.cli import main
from forwarder.es_templates import build_templates, checked_in, drift
from forwarder.sinks.base import SinkFatal
from forwarder.sinks.opensearch import OpenSearchSink as Sink
from forwarder.sinks.opensearch import policy_for
from forwarder.sinks.os_setup import install_policy, setup_opensearch


def _leaves(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict) and isinstance(node.get("type"), str):  # a field (a property may be named "type")
        return [node]
    if isinstance(node, dict):
        return [leaf for value in node.values() for leaf in _leaves(value)]
    return []


def test_checked_in_templates_are_generated_from_the_catalogue() -> None:
    assert drift(checked_in("opensearch")) == [], "run: python -m forwarder.es_templates --write"


def test_opensearch_types_replace_elasticsearch_ones() -> None:
    text = json.dumps(build_templates(product="opensearch").files())
    assert '"flattened"' not in text and "depth_limit" not in text
    flattened = {spec.name for spec in load_catalogue().fields if spec.type == "flattened"}
    component = build_templates(product="opensearch").component["cloudtrail-assumerole@cloudtrail"]
    mapped = component["template"]["mappings"]["properties"]
    for name in flattened:
        node = mapped
        for part in name.split(".")[:-1]:
            node = node[part]["properties"]
        assert node[name.split(".")[-1]] == {"type": "flat_object"}, name
    # Everything else is the same mapping as Elasticsearch's.
    es = [leaf for leaf in _leaves(build_templates().files()) if leaf["type"] != "flattened"]
    assert es == [leaf for leaf in _leaves(build_templates(product="opensearch").files()) if leaf["type"] != "flat_object"]


def test_ism_policy_deletes_by_age_and_rolls_a_data_stream_over() -> None:
    dated = policy_for(Namespace("http://127.0.0.1:1", None).config(ism={"delete_after": "30d"}))  # type: ignore[arg-type]
    stream = policy_for(Namespace("http://127.0.0.1:1", None).config(  # type: ignore[arg-type]
        data_stream="ct", ism={"delete_after": "90d", "rollover_after": "1d", "rollover_size": "50gb"}))
    assert dated is not None and stream is not None
    hot, delete = dated["policy"]["states"]
    assert hot["actions"] == [] and hot["transitions"] == [{"state_name": "delete", "conditions": {"min_index_age": "30d"}}]
    assert delete == {"name": "delete", "actions": [{"delete": {}}], "transitions": []}
    assert dated["policy"]["ism_template"][0]["index_patterns"][0].endswith("-ct-*")
    assert stream["policy"]["states"][0]["actions"] == [{"rollover": {"min_index_age": "1d", "min_size": "50gb"}}]
    assert stream["policy"]["ism_template"] == [{"index_patterns": ["ct"], "priority": 100}]
    assert policy_for(Namespace("http://127.0.0.1:1", None).config()) is None  # type: ignore[arg-type]


class _IsmApi:
    """The two ISM calls setup makes, as the plugin answers them (GET with _seq_no/_primary_term)."""

    where = "test"

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.puts: list[dict[str, Any]] = []

    def ism_policy(self, policy_id: str) -> dict[str, Any] | None:
        return self.stored

    def put_ism_policy(self, policy_id: str, body: dict[str, Any], installed: dict[str, Any] | None) -> None:
        if (installed is None) != (self.stored is None) or (installed and installed["_seq_no"] != self.stored["_seq_no"]):  # type: ignore[index]
            raise AssertionError("an update must name the version it replaces")
        seq = 0 if self.stored is None else self.stored["_seq_no"] + 1
        self.stored = {"_id": policy_id, "_seq_no": seq, "_primary_term": 1, "policy": {**body["policy"], "policy_id": policy_id}}
        self.puts.append(body)


def test_ism_policy_is_installed_once_and_updated_when_it_changes() -> None:
    api = _IsmApi()
    config = Namespace("http://127.0.0.1:1", None).config(ism={"delete_after": "30d"})  # type: ignore[arg-type]
    policy = policy_for(config)
    assert policy is not None
    assert install_policy(api, "p", policy) == "ISM policy p: created"  # type: ignore[arg-type]
    assert install_policy(api, "p", policy) == "ISM policy p: unchanged"  # type: ignore[arg-type]
    longer = policy_for(config.model_copy(update={"ism": config.ism.model_copy(update={"delete_after": "60d"})}))  # type: ignore[union-attr]
    assert install_policy(api, "p", longer) == "ISM policy p: updated"  # type: ignore[arg-type]
    assert len(api.puts) == 2


@pytest.mark.opensearch
def test_setup_installs_then_changes_nothing(ns: Namespace) -> None:
    cfg = ns.config()
    first = setup_opensearch(cfg)
    assert all(line.endswith(": created") for line in first) and len(first) == 6
    assert all(line.endswith(": unchanged") for line in setup_opensearch(cfg))
    installed = ns.client.cluster.get_component_template(name=f"{ns.prefix}@cloudtrail")
    mapped = installed["component_templates"][0]["component_template"]["template"]["mappings"]["properties"]
    assert mapped["requestParameters"] == {"type": "flat_object"}
    # An edited component is put back, alone.
    ns.client.cluster.put_component_template(name=f"{ns.prefix}@ecs", body={"template": {"mappings": {}}})
    again = setup_opensearch(cfg)
    assert [line for line in again if not line.endswith(": unchanged")] == [f"component template {ns.prefix}@ecs: updated"]


@pytest.mark.opensearch
def test_the_sink_refuses_to_start_without_its_template_and_warns_when_it_differs(
        ns: Namespace, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(SinkFatal, match=r"index template 'fwtest-\w+' is not installed .*forwarder setup opensearch"):
        ns.sink(setup=False)
    setup_opensearch(ns.config())
    ns.client.indices.put_index_template(name=ns.prefix, body={"index_patterns": [f"{ns.prefix}-ct-*"], "_meta": {"digest": "old"}})
    with caplog.at_level(logging.WARNING):
        Sink(ns.config()).close()
    assert "differs from this version's: run `forwarder setup opensearch" in caplog.text


@pytest.mark.opensearch
def test_setup_from_the_command_line(ns: Namespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "forwarder.yaml"
    config.write_text(yaml.safe_dump({"sinks": [ns.config().model_dump(mode="json", exclude_defaults=True)]}))
    assert main(["setup", "opensearch", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert f"index template {ns.prefix}: created" in captured.out and captured.err == ""
    assert main(["setup", "elasticsearch", "--config", str(config)]) == 2
    assert "no sink of type elasticsearch" in capsys.readouterr().err


@pytest.mark.opensearch
def test_an_ism_policy_on_a_cluster_without_ism_is_a_clear_error(ns: Namespace, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The test node (the integ-test zip) has no ISM plugin, as some clusters do not."""
    config = tmp_path / "forwarder.yaml"
    config.write_text(yaml.safe_dump({"sinks": [ns.config(ism={"delete_after": "30d"}).model_dump(
        mode="json", exclude_defaults=True)]}))
    assert main(["setup", "opensearch", "--config", str(config)]) == 3
    captured = capsys.readouterr()
    assert "has no Index State Management plugin" in captured.err and "Traceback" not in captured.err
    assert f"index template {ns.prefix}: created" in captured.out or captured.out == ""
