"""The Helm chart renders and every manifest validates against the Kubernetes schemas.

Needs `helm` on PATH (see scripts/check-chart for how to build it) and the
kubernetes-validate package; skipped with the reason otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = shutil.which("helm")
K8S_VERSION = "1.30.0"  # the oldest Kubernetes the chart promises to run on

pytestmark = pytest.mark.skipif(
    HELM is None, reason="helm is not on PATH (go install helm.sh/helm/v3/cmd/helm@v3.16.4)"
)


def render(*args: str) -> list[dict[str, Any]]:
    assert HELM is not None
    result = subprocess.run([HELM, "template", "t", str(ROOT / "chart"), *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_renders_and_validates_strictly() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    docs = render()
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Deployment",
        "ExternalSecret",
        "HorizontalPodAutoscaler",
        "Service",
        "ServiceAccount",
    }
    for doc in docs:
        if doc["kind"] == "ExternalSecret":  # a CRD: no schema in kubernetes-validate; checked below
            continue
        kv.validate(doc, K8S_VERSION, strict=True)


def test_one_deployment_per_stage_with_probes_grace_and_secrets() -> None:
    docs = render()
    deployments = {d["metadata"]["name"]: d for d in by_kind(docs, "Deployment")}
    assert set(deployments) == {"t-streams-sanitize", "t-streams-cost", "t-streams-incidents"}
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"] == ["worker", "--only", name.rsplit("-", 1)[-1]]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        env = {e["name"]: e.get("value") for e in container["env"]}
        grace = float(env["STREAMS_SHUTDOWN_GRACE"])
        assert pod["terminationGracePeriodSeconds"] > grace  # the worker exits before the kubelet SIGKILLs
        assert container["envFrom"] == [{"secretRef": {"name": "t-streams-secrets"}}]
        assert not any("KEY" in k or "TOKEN" in k or "PASSWORD" in k for k in env), "secrets only via the Secret"


def test_hpa_scales_2_to_20_on_queue_depth() -> None:
    for hpa in by_kind(render(), "HorizontalPodAutoscaler"):
        spec = hpa["spec"]
        assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 20)
        assert spec["metrics"][0]["pods"]["metric"]["name"] == "swarm_queue_depth"


def test_configmap_carries_the_repository_config_files() -> None:
    (config,) = by_kind(render(), "ConfigMap")
    for name in ("topics", "budgets", "escalations", "detectors"):
        assert config["data"][f"{name}.yaml"].strip() == (ROOT / f"{name}.yaml").read_text().strip()
        yaml.safe_load(config["data"][f"{name}.yaml"])


def test_external_secret_references_the_secret_store() -> None:
    (secret,) = by_kind(render(), "ExternalSecret")
    assert secret["apiVersion"].startswith("external-secrets.io/")
    spec = secret["spec"]
    assert spec["secretStoreRef"] == {"name": "cluster-secrets", "kind": "ClusterSecretStore"}
    assert spec["target"]["name"] == "t-streams-secrets"
    assert all({"secretKey", "remoteRef"} <= item.keys() for item in spec["data"])
    assert not by_kind(render("--set", "externalSecret.enabled=false"), "ExternalSecret")
