"""The Kubernetes manifests: kubernetes-validate (bundled schemas, strict), and what the
Deployment must say about probes, security and state."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml
from artifacts import DEPLOY, tool, worst_case_memory_mib
from dockerfile import last

from forwarder.config import RedisState, SecretRef, SqsSource, parse_config

K8S = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "container" / "Dockerfile"
KUSTOMIZATION = K8S / "kustomization.yaml"


def manifests() -> list[Path]:
    return [K8S / name for name in yaml.safe_load(KUSTOMIZATION.read_text())["resources"]]


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((K8S / name).read_text())


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("kubernetes-validate"), "--strict", *map(str, paths)], capture_output=True, text=True)


def test_kustomization_lists_every_manifest() -> None:
    on_disk = {path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION}
    assert set(manifests()) == on_disk


def test_manifests_pass_kubernetes_validate() -> None:
    result = validate(*manifests())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(manifests()), result.stdout


def test_kubernetes_validate_rejects_a_wrong_field(tmp_path: Path) -> None:
    broken = tmp_path / "statefulset.yaml"
    broken.write_text((K8S / "statefulset.yaml").read_text().replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    assert validate(broken).returncode != 0


def test_deployment_is_probed_non_root_and_read_only() -> None:
    pod = load("statefulset.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert {"requests", "limits"} <= container["resources"].keys()
    assert container["args"] == json.loads(last(DOCKERFILE, "CMD"))
    mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
    assert mounts["state"] == "/var/lib/forwarder"
    # Each replica's own volume: its dead letter (and, with one replica, the SQLite state).
    assert [claim["metadata"]["name"] for claim in load("statefulset.yaml")["spec"]["volumeClaimTemplates"]] == ["state"]
    assert pod["serviceAccountName"] == load("serviceaccount.yaml")["metadata"]["name"]
    assert "eks.amazonaws.com/role-arn" in load("serviceaccount.yaml")["metadata"]["annotations"]


def test_service_names_the_metrics_port() -> None:
    (port,) = load("service.yaml")["spec"]["ports"]
    assert port["name"] == "metrics" and port["targetPort"] == "metrics"


def test_configmap_holds_a_valid_configuration_using_the_mounts() -> None:
    config = parse_config(yaml.safe_load(load("configmap.yaml")["data"]["config.yaml"]), "configmap.yaml")
    pod = load("statefulset.yaml")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    secret_keys = set(load("secret.yaml")["stringData"])
    for sink in config.sinks:
        for value in vars(sink).values():
            if isinstance(value, SecretRef):
                assert value.file is not None and str(value.file.parent) == mounts["secrets"]
                assert value.file.name in secret_keys
    assert config.metrics.listen == "0.0.0.0:9108"
    # One replica with SQLite; scale-out needs Redis shared by every replica.
    replicas = load("statefulset.yaml")["spec"]["replicas"]
    assert replicas == 1 or isinstance(config.state, RedisState)
    if not isinstance(config.state, RedisState):
        assert str(config.state.path).startswith(mounts["state"])


def test_memory_limit_holds_what_the_configuration_lets_in() -> None:
    config = parse_config(yaml.safe_load(load("configmap.yaml")["data"]["config.yaml"]), "configmap.yaml")
    assert isinstance(config.source, SqsSource)
    (container,) = load("statefulset.yaml")["spec"]["template"]["spec"]["containers"]
    limit = container["resources"]["limits"]["memory"]
    units = {"Mi": 1, "Gi": 1024}
    assert limit[-2:] in units, limit
    limit_mib = int(limit[:-2]) * units[limit[-2:]]
    assert limit_mib >= worst_case_memory_mib(config.source.concurrency, config.source.max_object_bytes)


SCALE_OUT = K8S / "scale-out"


def _overlay() -> dict[str, Any]:
    return yaml.safe_load((SCALE_OUT / "kustomization.yaml").read_text())


def test_the_scale_out_variant_patches_what_the_base_has_and_its_own_manifests_validate() -> None:
    overlay = _overlay()
    assert overlay["resources"][0] == ".." and overlay["namespace"] == yaml.safe_load(KUSTOMIZATION.read_text())["namespace"]
    base = {(doc["kind"], doc["metadata"]["name"]) for path in manifests() for doc in yaml.safe_load_all(path.read_text())}
    for patch in overlay["patches"]:
        target = yaml.safe_load((SCALE_OUT / patch["path"]).read_text())
        assert (target["kind"], target["metadata"]["name"]) in base, patch
    own = [SCALE_OUT / name for name in overlay["resources"][1:]]
    result = validate(*own)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == sum(
        len(list(yaml.safe_load_all(path.read_text()))) for path in own), result.stdout


def test_the_scale_out_variant_runs_several_replicas_on_one_persistent_redis() -> None:
    config = parse_config(yaml.safe_load(yaml.safe_load((SCALE_OUT / "config.yaml").read_text())["data"]["config.yaml"]),
                          "scale-out/config.yaml")
    assert isinstance(config.state, RedisState) and isinstance(config.source, SqsSource)
    assert config.state.claim_lease_seconds < config.source.visibility_timeout_seconds
    assert yaml.safe_load((SCALE_OUT / "forwarder.yaml").read_text())["spec"]["replicas"] >= 2
    secrets = set(load("secret.yaml")["stringData"]) | set(yaml.safe_load((SCALE_OUT / "secret.yaml").read_text())["stringData"])
    assert config.state.password is not None and config.state.password.file is not None
    assert config.state.password.file.name in secrets
    service, redis = yaml.safe_load_all((SCALE_OUT / "redis.yaml").read_text())
    assert config.state.url == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    settings = dict(zip(args[::2], args[1::2]))
    # Held records and sessions outlive a Redis restart, and none is evicted under pressure.
    assert settings["--appendonly"] == "yes" and settings["--maxmemory-policy"] == "noeviction"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] in {
        mount["name"] for mount in redis["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
