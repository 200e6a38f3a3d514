"""deploy/rayservice.yaml: no Kubernetes here, so its structure stands in for an apply.

- the RayService itself against deploy/rayservice.schema.json (our schema of the KubeRay fields it uses: no CRD
  schema for KubeRay is in the package registries);
- each pod template against Kubernetes' own schema (kubernetes-validate, as a core/v1 PodTemplate);
- what ties it to our code: the Serve import path exists, the control plane's custom resource is the head's, the
  ports the bridge and the router bind are the head container's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "rayservice.yaml"
SCHEMA = ROOT / "deploy" / "rayservice.schema.json"
K8S_VERSION = "1.33.0"


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_manifest_matches_the_rayservice_schema() -> None:
    jsonschema.validate(manifest(), json.loads(SCHEMA.read_text()))


def test_schema_refuses_a_misspelt_field() -> None:
    bad = manifest()
    bad["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["maxReplica"] = 8
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA.read_text()))


def pod_templates(doc: dict) -> list[dict]:
    cluster = doc["spec"]["rayClusterConfig"]
    return [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]


def test_pod_templates_are_valid_kubernetes() -> None:
    for template in pod_templates(manifest()):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": copy.deepcopy(template)}, K8S_VERSION, strict=True)


def test_kubernetes_validate_catches_a_broken_template() -> None:
    template = pod_templates(manifest())[0]
    template["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                                      "template": template}, K8S_VERSION, strict=True)


def test_manifest_matches_the_code() -> None:
    doc = manifest()
    serve = yaml.safe_load(doc["spec"]["serveConfigV2"])
    (application,) = serve["applications"]
    module, attr = application["import_path"].split(":")
    from engine.cluster import serve_app

    assert module == serve_app.__name__ and hasattr(serve_app, attr)
    front = serve_app.ClusterFront.ray_actor_options["resources"]
    head = doc["spec"]["rayClusterConfig"]["headGroupSpec"]
    assert json.loads(json.loads(head["rayStartParams"]["resources"])) == front
    ports = {p["containerPort"] for p in head["template"]["spec"]["containers"][0]["ports"]}
    assert {8081, 5555, 5556} <= ports
    env = application["runtime_env"]["env_vars"]
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    workers = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert float(workers["rayStartParams"]["num-gpus"]) >= float(env["LP_CLUSTER_GPUS_PER_REPLICA"])
