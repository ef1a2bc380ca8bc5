"""Kefu's Kubernetes base (deploy/k8s/base/), written from one description of the services.

Six Deployments differ only in name, port, figures and what they connect to; writing them from
here keeps their probes, security context and secret references alike. The files are
committed; `python -m deploy.k8s_manifests --write` rewrites them and a test fails when they
are stale. The overlays (deploy/k8s/overlays/) are written by hand.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shared.messaging.topology import WEBHOOK_JOBS_QUEUE, service_queue_name
from shared.settings import DEFAULT_PORTS, SERVICES

BASE = Path(__file__).resolve().parent / "k8s" / "base"
IMAGE = "kefu"
UID = 10001
POSTGRES_HOST = "kefu-postgres-rw"  # CloudNativePG's read-write service of the Cluster below
RABBITMQ_HOST = "kefu-rabbitmq"  # the RabbitmqCluster's client service
# KEDA's operator runs in a namespace of its own, so it reaches the management API by the
# service's full name: the overlays put Kefu in the namespace "kefu".
RABBITMQ_MANAGEMENT = "http://kefu-rabbitmq.kefu.svc:15672"
SECRETS = "kefu-secrets"  # made outside the manifests (production) or by the local overlay
POSTGRES_SUPERUSER_SECRET = "kefu-postgres-superuser"  # made by CloudNativePG
RABBITMQ_ADMIN_SECRET = "kefu-rabbitmq-default-user"  # made by the RabbitMQ operator
BROKER_USERS = (*SERVICES, "cli", "subscriber")


@dataclass(frozen=True)
class Figures:
    """Requests from the measured resident memory (idle, and the bench's peak under load) and
    CPU (ms per issue in the loop at ~115 issues/s, docs/benchmarks.md)."""

    cpu_request: str
    memory_request: str
    memory_limit: str


# One process is one Python event loop: it cannot use more than about a core.
CPU_LIMIT = "1"
FIGURES = {
    # idle 88 MB, peak 97 MB; 1.5 ms CPU per issue, 1 ms per single POST (748/s on a core).
    "intake": Figures("200m", "128Mi", "256Mi"),
    # idle 220 MB, peak 222-234 MB (jieba's dictionary and IDF table); 2.1 ms per issue.
    "need_analyzer": Figures("250m", "320Mi", "512Mi"),
    # idle 84 MB, peak 89 MB; 2.3 ms per issue.
    "feedback": Figures("250m", "128Mi", "256Mi"),
    # idle 84 MB, peak 91 MB; 3.1 ms per issue, the busiest consumer.
    "improvement": Figures("400m", "128Mi", "256Mi"),
    # idle 93 MB; 6.4-7.7 ms per delivery, ~46 deliveries/s measured.
    "webhooks": Figures("250m", "128Mi", "256Mi"),
    # idle 92 MB; pages render in under 300 ms with 100,000 issues.
    "console": Figures("100m", "128Mi", "256Mi"),
}
# Messages (ready + unacked) per replica that KEDA aims at: one prefetch window (200) in
# flight and one waiting, so a replica is added once a backlog outgrows what one holds.
QUEUE_LENGTH_PER_REPLICA = "400"
MAX_REPLICAS = 4


def k8s_name(service: str) -> str:
    return service.replace("_", "-")


def secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def service_env(service: str) -> list[dict[str, Any]]:
    """The service's own database role and broker user; the password only ever from a Secret
    ($(VAR) is expanded by the kubelet from the variables before it)."""
    role = f"kefu_{service}"
    return [
        secret_env("KEFU_DB_PASSWORD", SECRETS, f"db-password-{k8s_name(service)}"),
        secret_env("KEFU_AMQP_PASSWORD", SECRETS, f"amqp-password-{k8s_name(service)}"),
        {
            "name": "KEFU_DATABASE_URL",
            "value": f"postgresql+asyncpg://{role}:$(KEFU_DB_PASSWORD)@{POSTGRES_HOST}:5432/kefu",
        },
        {
            "name": "KEFU_AMQP_URL",
            "value": f"amqp://{role}:$(KEFU_AMQP_PASSWORD)@{RABBITMQ_HOST}:5672/",
        },
        {"name": "KEFU_PORT", "value": str(DEFAULT_PORTS[service])},
        secret_env("KEFU_BOOTSTRAP_API_KEY", SECRETS, "bootstrap-api-key", optional=True),
    ]


def security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def http_probe(path: str, port: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "kefu", "app.kubernetes.io/component": k8s_name(service)}


def deployment(service: str) -> dict[str, Any]:
    name, port, figures = k8s_name(service), DEFAULT_PORTS[service], FIGURES[service]
    console = service == "console"
    env = console_env() if console else service_env(service)
    container: dict[str, Any] = {
        "name": name,
        "image": IMAGE,
        "command": ["python", "-m", f"services.{service}"],
        "ports": [{"name": "http", "containerPort": port}],
        "envFrom": [{"configMapRef": {"name": "kefu-config"}}],
        "env": env,
        "resources": {
            "requests": {"cpu": figures.cpu_request, "memory": figures.memory_request},
            "limits": {"cpu": CPU_LIMIT, "memory": figures.memory_limit},
        },
        # Slow starts (need_analyzer loads its language models) are the startup probe's; after
        # it, liveness restarts a process whose event loop no longer answers.
        "startupProbe": http_probe("/healthz", port, period=2, failures=60),
        "livenessProbe": http_probe("/healthz", port, period=10, failures=3),
        # The console stays in service while a service it reads from is down (its pages say
        # so); the services are ready while their /readyz says they can serve.
        "readinessProbe": http_probe("/healthz" if console else "/readyz", port, 5, 2),
        "securityContext": security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod: dict[str, Any] = {
        "securityContext": pod_security(),
        # uvicorn drains for up to 10 s, then the consumer and the relay stop.
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": labels(service)},
            }
        ],
    }
    if not console:
        # The pod starts only once `kefu setup` (the Job) has brought this service's schema to
        # the head of the migrations in this image and made its broker user.
        pod["initContainers"] = [
            {
                "name": "wait-setup",
                "image": IMAGE,
                "command": ["kefu", "wait-setup", service, "--timeout", "600"],
                "envFrom": [{"configMapRef": {"name": "kefu-config"}}],
                "env": service_env(service),
                "resources": {
                    "requests": {"cpu": "50m", "memory": "96Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "securityContext": security(),
            }
        ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(service)},
        "spec": {
            # No replicas: the HPA or KEDA owns the count (from their minimum, never below one
            # where a relay runs), and an apply would otherwise reset it.
            "selector": {"matchLabels": labels(service)},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": labels(service),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def console_env() -> list[dict[str, Any]]:
    return [{"name": "KEFU_PORT", "value": str(DEFAULT_PORTS["console"])}]


def service(service: str) -> dict[str, Any]:
    port = DEFAULT_PORTS[service]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": k8s_name(service), "labels": labels(service)},
        "spec": {
            "selector": labels(service),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def disruption_budget(service: str) -> dict[str, Any]:
    # maxUnavailable, not minAvailable: a service of one replica can still be drained (its
    # queue holds the events meanwhile); one of two keeps serving.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": k8s_name(service), "labels": labels(service)},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels(service)}},
    }


HPA_SERVICES = ("intake", "console")


def cpu_autoscaler(service: str) -> dict[str, Any]:
    name = k8s_name(service)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(service)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 6,
            "metrics": [
                {
                    "type": "Resource",
                    # An absolute figure, not a share of the request: one process tops out
                    # near a core, so a replica is added when they average 0.7 of one.
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "AverageValue", "averageValue": "700m"},
                    },
                }
            ],
        },
    }


def consumer_queues(service: str) -> list[str]:
    queues = [service_queue_name(service)]
    if service == "webhooks":
        queues.append(WEBHOOK_JOBS_QUEUE)
    return queues


def queue_autoscaler(service: str) -> dict[str, Any]:
    name = k8s_name(service)
    triggers = [
        {
            "type": "rabbitmq",
            "name": queue.replace(".", "-").replace("_", "-"),
            "metadata": {
                # The management API: its queue length counts unacked messages too, which a
                # busy consumer holds up to its prefetch.
                "protocol": "http",
                "host": RABBITMQ_MANAGEMENT,
                "vhostName": "/",
                "queueName": queue,
                "mode": "QueueLength",
                "value": QUEUE_LENGTH_PER_REPLICA,
            },
            "authenticationRef": {"name": "kefu-rabbitmq-management"},
        }
        for queue in consumer_queues(service)
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": labels(service)},
        "spec": {
            "scaleTargetRef": {"name": name},
            # Its outbox relay must keep running even when its queue is empty.
            "minReplicaCount": 1,
            "maxReplicaCount": MAX_REPLICAS,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
                }
            },
            "triggers": triggers,
        },
    }


def trigger_authentication() -> dict[str, Any]:
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": "kefu-rabbitmq-management"},
        "spec": {
            "secretTargetRef": [
                {"parameter": "username", "name": RABBITMQ_ADMIN_SECRET, "key": "username"},
                {"parameter": "password", "name": RABBITMQ_ADMIN_SECRET, "key": "password"},
            ]
        },
    }


def setup_job() -> dict[str, Any]:
    env = [
        secret_env("POSTGRES_PASSWORD", POSTGRES_SUPERUSER_SECRET, "password"),
        secret_env("RABBITMQ_USER", RABBITMQ_ADMIN_SECRET, "username"),
        secret_env("RABBITMQ_PASSWORD", RABBITMQ_ADMIN_SECRET, "password"),
        {
            "name": "KEFU_ADMIN_DATABASE_URL",
            "value": f"postgresql+asyncpg://postgres:$(POSTGRES_PASSWORD)@{POSTGRES_HOST}:5432/kefu",
        },
        {
            "name": "KEFU_AMQP_URL",
            "value": f"amqp://$(RABBITMQ_USER):$(RABBITMQ_PASSWORD)@{RABBITMQ_HOST}:5672/",
        },
        {
            "name": "KEFU_AMQP_MANAGEMENT_URL",
            "value": f"http://$(RABBITMQ_USER):$(RABBITMQ_PASSWORD)@{RABBITMQ_HOST}:15672",
        },
    ]
    env += [
        secret_env(f"KEFU_DB_PASSWORD_{name.upper()}", SECRETS, f"db-password-{k8s_name(name)}")
        for name in SERVICES
    ]
    env += [
        secret_env(f"KEFU_AMQP_PASSWORD_{user.upper()}", SECRETS, f"amqp-password-{name}")
        for user, name in ((user, k8s_name(user)) for user in BROKER_USERS)
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "kefu-setup", "labels": labels("setup")},
        "spec": {
            # Retried while PostgreSQL or RabbitMQ are still coming up; every step is idempotent.
            "backoffLimit": 10,
            "template": {
                "metadata": {"labels": labels("setup")},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "securityContext": pod_security(),
                    "containers": [
                        {
                            "name": "setup",
                            "image": IMAGE,
                            "command": ["kefu", "setup"],
                            "envFrom": [{"configMapRef": {"name": "kefu-config"}}],
                            "env": env,
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "securityContext": security(),
                        }
                    ],
                },
            },
        },
    }


def config_map() -> dict[str, Any]:
    urls = {
        f"KEFU_URL_{name.upper()}": f"http://{k8s_name(name)}:{DEFAULT_PORTS[name]}"
        for name in SERVICES
    }
    console = {
        f"KEFU_CONSOLE_{name.upper()}_URL": f"http://{k8s_name(name)}:{DEFAULT_PORTS[name]}"
        for name in ("intake", "need_analyzer", "feedback", "improvement")
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kefu-config"},
        "data": {
            "KEFU_HOST": "0.0.0.0",
            "KEFU_LOG_JSON": "true",
            "KEFU_CACHE_DIR": "/tmp/kefu-cache",
            # Every service has a broker user of its own, kefu_<service>, made by the Job.
            "KEFU_AMQP_USER_PREFIX": "kefu_",
            # Served behind HTTPS (the ingress in front of the console).
            "KEFU_CONSOLE_COOKIE_SECURE": "true",
            **urls,
            **console,
        },
    }


def postgres_cluster() -> dict[str, Any]:
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "kefu-postgres"},
        "spec": {
            "instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:15.15",
            # `kefu setup` connects as postgres to create the database, the roles and the
            # schemas; the operator makes its password, in kefu-postgres-superuser.
            "enableSuperuserAccess": True,
            "postgresql": {
                # Each replica of each service holds a pool of 10 (KEFU_DB_POOL_SIZE).
                "parameters": {"max_connections": "300"}
            },
            "storage": {"size": "20Gi"},
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"memory": "2Gi"},
            },
            "affinity": {"enablePodAntiAffinity": True, "topologyKey": "kubernetes.io/hostname"},
        },
    }


def rabbitmq_cluster() -> dict[str, Any]:
    return {
        "apiVersion": "rabbitmq.com/v1beta1",
        "kind": "RabbitmqCluster",
        "metadata": {"name": "kefu-rabbitmq"},
        "spec": {
            # Three nodes: each quorum queue has a leader and two followers.
            "replicas": 3,
            "image": "rabbitmq:4.1.4-management",
            "rabbitmq": {
                # The operator always enables it too; named so that nobody wonders.
                "additionalPlugins": ["rabbitmq_prometheus"],
            },
            "persistence": {"storage": "10Gi"},
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
        },
    }


def kustomization(files: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{"pairs": {"app.kubernetes.io/part-of": "kefu"}}],
        "resources": files,
    }


HEADER = "# Written by `python -m deploy.k8s_manifests --write`; edit deploy/k8s_manifests.py.\n"


def documents() -> dict[str, list[dict[str, Any]]]:
    """File name -> its resources."""
    files: dict[str, list[dict[str, Any]]] = {
        "config.yaml": [config_map()],
        "postgres.yaml": [postgres_cluster()],
        "rabbitmq.yaml": [rabbitmq_cluster(), trigger_authentication()],
        "setup-job.yaml": [setup_job()],
    }
    for name in (*SERVICES, "console"):
        scaler = cpu_autoscaler(name) if name in HPA_SERVICES else queue_autoscaler(name)
        files[f"{k8s_name(name)}.yaml"] = [
            deployment(name),
            service(name),
            disruption_budget(name),
            scaler,
        ]
    files["kustomization.yaml"] = [kustomization(sorted(files))]
    return files


def render() -> dict[str, str]:
    return {
        name: HEADER + "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in docs)
        for name, docs in documents().items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="write deploy/k8s/base/")
    args = parser.parse_args(argv)
    rendered = render()
    if not args.write:
        sys.stdout.write("---\n".join(rendered.values()))
        return 0
    BASE.mkdir(parents=True, exist_ok=True)
    for stale in set(path.name for path in BASE.glob("*.yaml")) - set(rendered):
        (BASE / stale).unlink()
    for name, text in rendered.items():
        (BASE / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
