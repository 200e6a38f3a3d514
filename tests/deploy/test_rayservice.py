"""deploy/rayservice.yaml: no Kubernetes here, so its structure stands in for an apply.

- the RayService itself against deploy/rayservice.schema.json (our schema of the KubeRay fields it uses: no CRD
  schema for KubeRay is in the package registries);
- each pod template against Kubernetes' own schema (kubernetes-validate, as a core/v1 PodTemplate);
- the RayCluster as Ray itself reads it: Ray's own reader of a KubeRay RayCluster spec (the KubeRay autoscaler's,
  shipped in the ray package) derives each group's resources from rayStartParams and the container limits; the
  control plane's resource and CPUs must be the head's, and the replicas the manifest asks for must fit the GPU
  group's nodes (engine/cluster/capacity.py, the check liveportrait-cluster makes);
- what ties it to our code: the Serve import path exists, the settings the control plane reads (front.py) bind
  ports the head container exposes, and its bridge connects to them.
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


def ray_node_types(doc: dict) -> dict[str, dict[str, float]]:
    """group name -> the resources Ray's KubeRay reader derives for one node of it ("headgroup" for the head)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    derived = _derive_autoscaling_config_from_ray_cr(
        {"metadata": {"name": doc["metadata"]["name"], "namespace": "default"},
         "spec": copy.deepcopy(doc["spec"]["rayClusterConfig"])})
    return {name: node["resources"] for name, node in derived["available_node_types"].items()}


def replicas_shortfall(doc: dict) -> str | None:
    """Why the engine replicas the manifest asks for would not fit its GPU workers (None: they fit)."""
    from engine.cluster import capacity
    from engine.cluster.front import config_from

    env = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["runtime_env"]["env_vars"]
    config = config_from(env)
    group = doc["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    nodes = [ray_node_types(doc)[group["groupName"]]] * group["replicas"]
    return capacity.shortfall(capacity.Ask(config.replicas, config.cpus, config.gpus_per_replica), nodes)


def test_ray_reads_the_cluster_as_the_control_plane_needs_it() -> None:
    from engine.cluster.front import FRONT_CPUS, FRONT_RESOURCE, bridge_command, config_from, http_port

    doc = manifest()
    head = ray_node_types(doc)["headgroup"]
    assert head[FRONT_RESOURCE] == 1 and head["CPU"] >= FRONT_CPUS  # the control plane can be placed, on the head
    assert replicas_shortfall(doc) is None
    env = yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["runtime_env"]["env_vars"]
    config = config_from(env)
    ports = {p["containerPort"] for p in doc["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
             ["containers"][0]["ports"]}
    bound = [config.command_addr, config.frame_addr or ""]
    assert {int(addr.rsplit(":", 1)[1]) for addr in bound} | {int(http_port(env))} <= ports
    command = bridge_command(config, http_port(env))
    assert command[command.index("--engine-addr") + 1] == config.command_addr.replace("0.0.0.0", "127.0.0.1")
    assert command[command.index("--frame-addr") + 1] == (config.frame_addr or "").replace("0.0.0.0", "127.0.0.1")


def test_ray_reading_catches_replicas_that_do_not_fit() -> None:
    doc = manifest()
    serve = yaml.safe_load(doc["spec"]["serveConfigV2"])
    serve["applications"][0]["runtime_env"]["env_vars"]["LP_CLUSTER_CPUS_PER_REPLICA"] = "7"  # the nodes have 6
    doc["spec"]["serveConfigV2"] = yaml.safe_dump(serve)
    reason = replicas_shortfall(doc)
    assert reason is not None and "room for 0" in reason, reason
    doc = manifest()
    doc["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]["resources"] = '"{}"'
    assert "liveportrait-front" not in ray_node_types(doc)["headgroup"]
