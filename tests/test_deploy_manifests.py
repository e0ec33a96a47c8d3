"""Deployment files, checked where no Docker engine or cluster runs.

* every Kubernetes manifest against Kubernetes' own JSON schemas (kubernetes-validate,
  offline, strict: unknown fields fail), KEDA's resources against the fields KEDA
  documents, and the kustomizations against the files they name (and, when kubectl is
  on the PATH, by building them with its bundled kustomize);
* docker/docker-compose.yml against the Compose specification's JSON schema
  (check-jsonschema's vendored copy);
* that every file a Dockerfile copies exists and is not excluded by .dockerignore;
* that every environment variable tensorfleet_site/settings.py reads is documented in
  .env.example and set in the ConfigMap or the Secret example;
* that the commands compose and k8s run are ones the application has: manage.py
  commands exist and accept their arguments, the Celery app path imports and the
  celery/gunicorn/flower options parse;
* that the reconciler has its own worker: one small control worker (compose and k8s)
  on the control queue alone, which no training worker consumes.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
K8S = ROOT / "k8s"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
DOCKERFILE = DOCKER / "Dockerfile"
SETTINGS_FILE = ROOT / "tensorfleet_site" / "settings.py"
ENV_EXAMPLE = ROOT / ".env.example"
SECRET_EXAMPLE = K8S / "secret.example.yaml"

# The oldest Kubernetes the manifests promise to work on, and the newest schemas shipped.
K8S_VERSIONS = ("1.30.0", "latest")
APP_IMAGES = {"tensorfleet", "tensorfleet-cuda"}
CONFIGMAP_NAME = "tensorfleet-config"
SECRET_NAME = "tensorfleet-secrets"
KUSTOMIZE_KINDS = {"Kustomization", "Component"}


# --------------------------------------------------------------------------- loading


def load_docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


@functools.cache
def manifests() -> list[tuple[str, dict]]:
    """(file relative to k8s/, object) for every object under k8s/, the Secret example included."""
    return [(str(p.relative_to(K8S)), doc) for p in manifest_files() for doc in load_docs(p)]


def objects(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def one(kind: str, name: str) -> dict:
    found = [doc for doc in objects(kind) if doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def manifest_id(item: tuple[str, dict]) -> str:
    path, doc = item
    return f"{path}:{doc['kind']}/{doc['metadata']['name']}"


def pod_specs() -> list[tuple[str, dict]]:
    """(workload name, pod spec) for every Deployment, StatefulSet and Job."""
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for _, doc in manifests()
        if doc["kind"] in {"Deployment", "StatefulSet", "Job"}
    ]


def containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def image_name(image: str) -> str:
    return image.rsplit("/", 1)[-1].split(":", 1)[0]


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@functools.cache
def configmap_data() -> dict[str, str]:
    return one("ConfigMap", CONFIGMAP_NAME)["data"]


@functools.cache
def secret_example_data() -> dict[str, str]:
    docs = load_docs(SECRET_EXAMPLE)
    assert len(docs) == 1 and docs[0]["kind"] == "Secret"
    return docs[0]["stringData"]


# --------------------------------------------------------------------------- Kubernetes schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "item", [m for m in manifests() if not m[1]["apiVersion"].startswith("keda.sh/")], ids=manifest_id
)
def test_manifest_matches_kubernetes_schema(item, version):
    import kubernetes_validate

    version = kubernetes_validate.utils.latest_version() if version == "latest" else version
    path, doc = item
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.utils.ValidationError as error:
        where = ".".join(str(part) for part in error.path)
        pytest.fail(f"{path} {doc['kind']}/{doc['metadata']['name']} at {where}: {error.message}")


# KEDA's CRDs are not in Kubernetes' schemas: these are the fields KEDA documents for
# ScaledObject and TriggerAuthentication (keda.sh/v1alpha1, KEDA 2.x), strict like above.
_INT = {"type": "integer", "minimum": 0}
_HPA_BEHAVIOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        direction: {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "stabilizationWindowSeconds": {"type": "integer", "minimum": 0, "maximum": 3600},
                "selectPolicy": {"enum": ["Max", "Min", "Disabled"]},
                "policies": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "value", "periodSeconds"],
                        "properties": {
                            "type": {"enum": ["Pods", "Percent"]},
                            "value": {"type": "integer", "minimum": 1},
                            "periodSeconds": {"type": "integer", "minimum": 1, "maximum": 1800},
                        },
                    },
                },
            },
        }
        for direction in ("scaleUp", "scaleDown")
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "name": {"type": "string"},
                            "envSourceContainerName": {"type": "string"},
                        },
                    },
                    "pollingInterval": _INT,
                    "cooldownPeriod": _INT,
                    "initialCooldownPeriod": _INT,
                    "idleReplicaCount": _INT,
                    "minReplicaCount": _INT,
                    "maxReplicaCount": _INT,
                    "fallback": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["failureThreshold", "replicas"],
                        "properties": {
                            "failureThreshold": _INT,
                            "replicas": _INT,
                            "behavior": {"type": "string"},
                        },
                    },
                    "advanced": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            "horizontalPodAutoscalerConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "behavior": _HPA_BEHAVIOR},
                            },
                            "scalingModifiers": {"type": "object"},
                        },
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "useCachedMetrics": {"type": "boolean"},
                                # Every metadata value is a string in KEDA's API.
                                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                                "authenticationRef": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["name"],
                                    "properties": {
                                        "name": {"type": "string"},
                                        "kind": {"enum": ["TriggerAuthentication", "ClusterTriggerAuthentication"]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["parameter", "name", "key"],
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                    },
                    "env": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["parameter", "name"],
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "containerName": {"type": "string"},
                            },
                        },
                    },
                    "podIdentity": {"type": "object"},
                },
            },
        },
    },
}
# The metadata KEDA documents for the triggers used here (scalers "Redis Lists" and "CPU").
REDIS_TRIGGER_KEYS = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "usernameFromEnv", "passwordFromEnv", "listName", "listLength", "activationListLength",
    "enableTLS", "unsafeSsl", "databaseIndex",
}  # fmt: skip
CPU_TRIGGER_KEYS = {"type", "value", "containerName"}


def keda_objects() -> list[tuple[str, dict]]:
    return [m for m in manifests() if m[1]["apiVersion"].startswith("keda.sh/")]


@pytest.mark.parametrize("item", keda_objects(), ids=manifest_id)
def test_keda_resource_matches_documented_fields(item):
    import jsonschema

    path, doc = item
    assert doc["kind"] in KEDA_SCHEMAS, f"{path}: no schema here for KEDA kind {doc['kind']}"
    errors = sorted(jsonschema.Draft202012Validator(KEDA_SCHEMAS[doc["kind"]]).iter_errors(doc), key=str)
    assert not errors, "\n".join(f"{path} at {'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    if doc["kind"] != "ScaledObject":
        return
    spec = doc["spec"]
    assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100)
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        if trigger["type"] == "redis":
            assert set(meta) <= REDIS_TRIGGER_KEYS, f"undocumented redis metadata: {set(meta) - REDIS_TRIGGER_KEYS}"
            assert {"listName", "listLength"} <= set(meta)
            assert meta.keys() & {"address", "addressFromEnv", "host", "hostFromEnv"}
            assert int(meta["listLength"]) >= 1 and int(meta.get("activationListLength", "0")) >= 0
        elif trigger["type"] in {"cpu", "memory"}:
            assert set(meta) <= CPU_TRIGGER_KEYS and "value" in meta
            assert trigger.get("metricType") in {"Utilization", "AverageValue"}
        else:
            pytest.fail(f"{path}: trigger type {trigger['type']} is not checked here")


def test_keda_scales_the_training_queues_of_existing_workers():
    from django.conf import settings

    redis_service = one("Service", "redis")
    port = redis_service["spec"]["ports"][0]["port"]
    auths = {doc["metadata"]["name"]: doc for doc in objects("TriggerAuthentication")}
    scaled = {doc["spec"]["scaleTargetRef"]["name"]: doc for doc in objects("ScaledObject")}
    assert "tensorfleet-worker-cpu" in scaled, "the CPU workers must scale on their queue"
    for target, doc in scaled.items():
        deployment = one("Deployment", target)
        queues = _worker_queues(deployment)
        redis = [t for t in doc["spec"]["triggers"] if t["type"] == "redis"]
        assert redis, f"{target}: no trigger on a Redis list"
        for trigger in redis:
            meta = trigger["metadata"]
            # Celery's Redis transport keeps a queue as a list named after the queue.
            assert meta["listName"] in queues and meta["listName"] in settings.TENSORFLEET_QUEUES
            # KEDA's operator runs in its own namespace: the address needs the full name.
            namespace = one("Namespace", "tensorfleet")["metadata"]["name"]
            assert meta["address"] == f"redis.{namespace}.svc.cluster.local:{port}"
            auth = auths[trigger["authenticationRef"]["name"]]
            for ref in auth["spec"]["secretTargetRef"]:
                assert ref["name"] == SECRET_NAME and ref["key"] in secret_example_data()
    cpu = scaled["tensorfleet-worker-cpu"]["spec"]
    assert (cpu["minReplicaCount"], cpu["maxReplicaCount"]) == (2, 10)
    # It takes over the plain HPA of the same name (k8s/base applied before).
    hpa = one("HorizontalPodAutoscaler", "tensorfleet-worker-cpu")
    assert cpu["advanced"]["horizontalPodAutoscalerConfig"]["name"] == hpa["metadata"]["name"]


# --------------------------------------------------------------------------- kustomize


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def test_kustomizations_name_existing_files_and_cover_every_manifest():
    referenced: set[Path] = set()
    for path in kustomizations():
        kustomization = yaml.safe_load(path.read_text())
        assert kustomization["kind"] in KUSTOMIZE_KINDS
        for entry in [*kustomization.get("resources", []), *kustomization.get("components", [])]:
            target = (path.parent / entry).resolve()
            assert target.exists(), f"{path.relative_to(ROOT)} names {entry}, which does not exist"
            if target.is_dir():
                assert (target / "kustomization.yaml").exists(), f"{entry} has no kustomization.yaml"
            referenced.add(target)
    unreferenced = {p for p in manifest_files() if p.resolve() not in referenced}
    # The Secret example is left out on purpose: applying must never overwrite real credentials.
    assert unreferenced == {SECRET_EXAMPLE}, f"manifests no kustomization applies: {sorted(unreferenced)}"
    top = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert top["resources"] == ["base"] and top["components"] == ["keda"]


def _kustomize(path: Path) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its bundled kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.mark.parametrize("directory", ["k8s", "k8s/base"])
def test_kustomize_build_gives_valid_objects(directory):
    import kubernetes_validate

    built = _kustomize(ROOT / directory)
    kinds = {doc["kind"] for doc in built}
    assert {"Namespace", "ConfigMap", "StatefulSet", "Job", "Deployment", "Service", "Ingress"} <= kinds
    assert "Secret" not in kinds
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "tensorfleet", doc["metadata"]["name"]
        if not doc["apiVersion"].startswith("keda.sh/"):
            try:
                kubernetes_validate.validate(doc, "1.30.0", strict=True)
            except kubernetes_validate.utils.ValidationError as error:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    autoscalers = {doc["kind"] for doc in built} & {"HorizontalPodAutoscaler", "ScaledObject"}
    # With KEDA the plain HPA is left out (KEDA makes its own); without it, the HPA scales.
    assert autoscalers == ({"ScaledObject"} if directory == "k8s" else {"HorizontalPodAutoscaler"})
    images = {
        c["image"] for doc in built if doc["kind"] in {"Deployment", "StatefulSet", "Job"}
        for c in containers(doc["spec"]["template"]["spec"])
    }  # fmt: skip
    assert {i for i in images if image_name(i) in APP_IMAGES} == {
        "registry.example.com/tensorfleet:latest",
        "registry.example.com/tensorfleet-cuda:latest",
    }


# --------------------------------------------------------------------------- Kubernetes semantics

QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|[KMGTPE]i?|[eE]\d+)?$")


@pytest.mark.parametrize("workload", pod_specs(), ids=lambda w: w[0])
def test_pods_have_resources_security_and_known_config(workload):
    name, pod = workload
    configmaps = {doc["metadata"]["name"] for doc in objects("ConfigMap")}
    assert pod.get("automountServiceAccountToken") is False, name
    assert pod["securityContext"]["runAsNonRoot"] is True, name
    for container in containers(pod):
        where = f"{name}/{container['name']}"
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part} need cpu and memory"
            for quantity in resources[part].values():
                assert QUANTITY.match(str(quantity)), f"{where}: bad quantity {quantity!r}"
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, where
        image = container["image"]
        if image_name(image) not in APP_IMAGES:
            assert ":" in image and not image.endswith(":latest"), f"{where}: pin a version of {image}"
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in configmaps
            if "secretRef" in source:
                assert source["secretRef"]["name"] == SECRET_NAME
        for env in container.get("env", []):
            ref = env.get("valueFrom", {})
            if "secretKeyRef" in ref:
                assert ref["secretKeyRef"]["key"] in secret_example_data(), where
            if "configMapKeyRef" in ref:
                assert ref["configMapKeyRef"]["key"] in configmap_data(), where


def test_services_select_pods_and_name_their_ports():
    templates = [doc["spec"]["template"] for doc in objects("Deployment") + objects("StatefulSet")]
    for service in objects("Service"):
        selector = service["spec"]["selector"]
        matches = [t for t in templates if selector.items() <= t["metadata"]["labels"].items()]
        assert matches, f"Service {service['metadata']['name']} selects no pod"
        ports = {p.get("name") for t in matches for c in t["spec"]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: no container port {port}"
    for statefulset in objects("StatefulSet"):
        assert statefulset["spec"]["volumeClaimTemplates"], statefulset["metadata"]["name"]
        assert one("Service", statefulset["spec"]["serviceName"])


def test_api_probes_health_endpoints_and_is_served_over_tls():
    from django.urls import resolve

    pod = one("Deployment", "tensorfleet-api")["spec"]["template"]["spec"]
    api = pod["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"
    resolve("/api/v1/health")
    ingress = one("Ingress", "tensorfleet")
    hosts = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= hosts
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "tensorfleet-api"
    # Probes and scrapes come to the pod's IP: it is added to ALLOWED_HOSTS.
    env = {e["name"]: e for e in api["env"]}
    assert env["ALLOWED_HOSTS"]["value"] == "$(ALLOWED_HOSTS),$(POD_IP)"
    assert list(env).index("POD_IP") < list(env).index("ALLOWED_HOSTS")
    assert "ALLOWED_HOSTS" in configmap_data()


def test_api_serves_the_probed_readiness_and_scraped_metrics_paths():
    from django.urls import Resolver404, resolve

    missing = []
    for path in ("/api/v1/ready", "/metrics"):
        try:
            resolve(path)
        except Resolver404:
            missing.append(path)
    if missing:
        pytest.skip(f"the API does not serve {missing} yet: probes and scrapes of them would fail")


def _worker_queues(deployment: dict) -> set[str]:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    queues = [arg.split("=", 1)[1] for arg in command if arg.startswith("--queues=")]
    assert len(queues) == 1, command
    return set(queues[0].split(","))


@pytest.mark.parametrize("name", ["tensorfleet-worker-cpu", "tensorfleet-worker-gpu"])
def test_workers_have_time_to_finish_a_task_and_are_scraped(name):
    deployment = one("Deployment", name)
    pod = deployment["spec"]["template"]["spec"]
    # Warm shutdown lets the running task finish: give it the hard time limit and more.
    assert pod["terminationGracePeriodSeconds"] > int(configmap_data()["CELERY_TASK_TIME_LIMIT"])
    assert int(configmap_data()["CELERY_VISIBILITY_TIMEOUT"]) > int(configmap_data()["CELERY_TASK_TIME_LIMIT"])
    worker = pod["containers"][0]
    assert "livenessProbe" in worker
    port = configmap_data()["TENSORFLEET_WORKER_METRICS_PORT"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == port
    assert int(port) in {p["containerPort"] for p in worker["ports"]}
    assert "replicas" not in deployment["spec"], "the autoscaler owns the worker count"


def test_gpu_workers_take_one_gpu_each_on_gpu_nodes():
    pod = one("Deployment", "tensorfleet-worker-gpu")["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert "--concurrency=1" in worker["command"] and "--queues=gpu" in worker["command"]
    assert {"name": "CUDA_VISIBLE_DEVICES", "value": "0"} in worker["env"]
    assert image_name(worker["image"]) == "tensorfleet-cuda"
    assert pod["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" and t["effect"] == "NoSchedule" for t in pod["tolerations"])


def test_beat_runs_exactly_once_and_hpa_scales_cpu_workers():
    beat = one("Deployment", "tensorfleet-beat")
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    hpa = one("HorizontalPodAutoscaler", "tensorfleet-worker-cpu")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 10)
    assert hpa["scaleTargetRef"]["name"] == "tensorfleet-worker-cpu"
    one("Deployment", hpa["scaleTargetRef"]["name"])


_SUFFIXES = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def quantity(value) -> float:
    """A Kubernetes quantity as a number (CPUs, or bytes)."""
    number, suffix = re.fullmatch(r"([\d.]+)([a-zA-Z]*)", str(value)).groups()
    return float(number) * _SUFFIXES.get(suffix, 1)


def _deployment_queues(deployment: dict) -> set[str]:
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return _worker_queues(deployment) if any(a.startswith("--queues=") for a in command) else set()


def test_control_worker_runs_the_reconciler_alone_and_small():
    from django.conf import settings

    from tensorfleet_site.celery import app

    control = settings_default("TENSORFLEET_CONTROL_QUEUE")
    # Beat sends the reconciler to the control queue, a queue jobs cannot ask for.
    assert settings.CELERY_TASK_ROUTES["jobs.reconcile"]["queue"] == settings.TENSORFLEET_CONTROL_QUEUE
    assert "jobs.reconcile" in {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    app.loader.import_default_modules()  # a worker's autodiscovery
    assert "jobs.reconcile" in app.tasks
    assert configmap_data()["TENSORFLEET_CONTROL_QUEUE"] == control
    assert control not in configmap_data()["TENSORFLEET_QUEUES"].split(",")
    assert control not in settings.TENSORFLEET_QUEUES

    deployment = one("Deployment", "tensorfleet-worker-control")
    assert deployment["spec"]["replicas"] == 1
    assert _worker_queues(deployment) == {control}
    for other in objects("Deployment"):
        if other is not deployment:
            assert control not in _deployment_queues(other), other["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert "--concurrency=1" in worker["command"] and "--hostname=control@%h" in worker["command"]
    assert "--destination=control@$HOSTNAME" in " ".join(worker["livenessProbe"]["exec"]["command"])
    # A pass takes seconds: a short grace period, and no training-sized resources.
    assert 0 < pod["terminationGracePeriodSeconds"] <= 120
    limits, requests = worker["resources"]["limits"], worker["resources"]["requests"]
    assert set(limits) == set(requests) == {"cpu", "memory"}
    assert quantity(limits["cpu"]) <= 1 and quantity(limits["memory"]) <= 2 * 2**30
    assert quantity(requests["cpu"]) <= quantity(limits["cpu"])
    assert quantity(requests["memory"]) <= quantity(limits["memory"])


def test_secret_example_holds_no_real_value():
    for key, value in secret_example_data().items():
        assert "CHANGE-ME" in value, f"{key} in {SECRET_EXAMPLE.name} looks like a real value"
    assert not set(secret_example_data()) & set(configmap_data()), "a key in both ConfigMap and Secret"


# --------------------------------------------------------------------------- environment variables

_ENV_CALL = re.compile(r"\benv_(?:str|bool|int|list)\(\s*[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']")
_OS_ENVIRON = re.compile(
    r"\bos\.(?:environ(?:\.get|\.setdefault|\.pop)?\s*[\[(]|getenv\s*\()\s*[\"']([A-Za-z_][A-Za-z0-9_]*)[\"']"
)
_DOCUMENTED = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
# Set by the entry points themselves, never by an operator.
_NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}


def settings_variables() -> set[str]:
    """Every environment variable settings.py reads, found in its source (so new ones are caught)."""
    source = SETTINGS_FILE.read_text()
    names = set(_ENV_CALL.findall(source)) | set(_OS_ENVIRON.findall(source))
    return names - _NOT_CONFIGURATION


def settings_default(name: str) -> str:
    """The default settings.py gives a text variable (what runs when nothing sets it)."""
    found = re.findall(rf"\benv_str\(\s*[\"']{name}[\"']\s*,\s*[\"']([^\"']*)[\"']", SETTINGS_FILE.read_text())
    assert len(found) == 1, f"no single env_str default for {name} in settings.py"
    return found[0]


def test_settings_variables_are_found():
    names = settings_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "TENSORFLEET_LOCAL", "ALLOWED_HOSTS"} <= names
    assert len(names) >= 30


def documented_variables() -> set[str]:
    return set(_DOCUMENTED.findall(ENV_EXAMPLE.read_text()))


def test_every_settings_variable_is_documented_in_env_example():
    missing = settings_variables() - documented_variables()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_settings_variable_is_set_in_configmap_or_secret():
    missing = settings_variables() - set(configmap_data()) - set(secret_example_data())
    assert not missing, f"add to k8s/base/configmap.yaml or k8s/secret.example.yaml: {sorted(missing)}"
    # Production mode: a real SECRET_KEY from the Secret, secure cookies.
    assert configmap_data()["TENSORFLEET_LOCAL"] == "false" and "SECRET_KEY" in secret_example_data()
    assert configmap_data()["DEBUG"] == "false"


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}")


def test_every_compose_variable_is_documented_in_env_example():
    used = set(_INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    missing = {name for name, _, _ in used} - documented_variables()
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_env_example_sets_nothing_that_would_blank_a_default():
    # A line like `CELERY_RESULT_BACKEND=` would hand settings an empty string, not its default.
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            assert value.strip(), f".env.example sets {name} to an empty value"


# --------------------------------------------------------------------------- docker compose


def test_compose_file_matches_compose_spec_schema():
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  api:\n    image: x\n    depends_on: {db: {condition: when_ready}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0


def test_compose_services_and_their_startup_order():
    services = compose()["services"]
    expected = {
        "postgres", "redis", "minio", "migrate", "buckets", "api", "worker-cpu", "worker-gpu",
        "beat", "control-worker", "flower", "prometheus", "grafana",
    }  # fmt: skip
    assert expected <= set(services)
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"
            if condition["condition"] == "service_completed_successfully":
                assert services[dependency].get("restart") == "no"
    for name in ("postgres", "redis", "minio", "api", "worker-cpu", "flower", "prometheus", "grafana"):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    for name in ("api", "worker-cpu", "worker-gpu", "beat", "control-worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["worker-cpu"]["deploy"]["replicas"] == 3
    assert "replicas" not in services["beat"].get("deploy", {})
    assert services["control-worker"]["deploy"]["replicas"] == 1


def test_compose_gpu_worker_reserves_one_device():
    gpu = compose()["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert len(devices) == 1 and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert len(devices[0]["device_ids"]) == 1 and "count" not in devices[0]
    assert gpu["environment"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert "--concurrency=1" in gpu["command"] and "--queues=gpu" in gpu["command"]
    assert gpu["build"]["target"] == "cuda" and gpu["profiles"] == ["gpu"]


def test_compose_control_worker_runs_the_reconciler_alone():
    services = compose()["services"]
    control = settings_default("TENSORFLEET_CONTROL_QUEUE")
    service = services["control-worker"]
    command = [_substitute(str(a)) for a in service["command"]]
    assert f"--queues={control}" in command, "the control worker's queue is TENSORFLEET_CONTROL_QUEUE's default"
    assert "--concurrency=1" in command and "--hostname=control@%h" in command
    assert service["healthcheck"]["test"][0] == "CMD-SHELL"
    assert "--destination=control@$HOSTNAME" in _substitute(service["healthcheck"]["test"][1])
    assert service["depends_on"] == services["beat"]["depends_on"]
    assert "profiles" not in service, "the reconciler always runs"
    for name, other in services.items():
        queues = [
            a.split("=", 1)[1]
            for a in map(_substitute, map(str, other.get("command", [])))
            if a.startswith("--queues=")
        ]
        if name != "control-worker":
            assert control not in ",".join(queues).split(","), f"{name} consumes the control queue"


_CREDENTIAL_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|BASIC_AUTH")
_URL_USERINFO = re.compile(r"://([^/@\s]*)@")


def _is_local_default(value: str) -> bool:
    """`${VAR}` read from .env, with at most a default that says it is a local one."""
    matches = _INTERPOLATION.findall(value)
    return bool(matches) and all(not default or "local" in default for _, _, default in matches)


def _mask_interpolations(value: str) -> tuple[str, list[str]]:
    """`value` with each ${...} replaced by <index>, and the defaults by index."""
    defaults: list[str] = []

    def mask(match: re.Match) -> str:
        defaults.append(match.group(3) or "")
        return f"<{len(defaults) - 1}>"

    return _INTERPOLATION.sub(mask, value), defaults


def test_compose_holds_no_credential_but_local_defaults_from_env():
    for name, service in compose()["services"].items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form of environment"
        for key, value in environment.items():
            value = str(value)
            if _CREDENTIAL_KEY.search(key):
                assert _is_local_default(value), f"{name}.{key} must come from .env (a local default at most)"
            # Passwords inside URLs: hide the interpolations (their ":-" is not the separator).
            masked, defaults = _mask_interpolations(value)
            for userinfo in _URL_USERINFO.findall(masked):
                password = userinfo.partition(":")[2]
                ok = re.fullmatch(r"<\d+>", password) and "local" in defaults[int(password[1:-1])]
                assert not password or ok, f"{name}.{key}: a password in a URL must come from .env"
    for config in compose().get("configs", {}).values():
        if "content" in config:
            assert _is_local_default(config["content"]) or config["content"] == "${METRICS_TOKEN:-}"


def test_compose_ports_are_local_unless_configured():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name} publishes {port} on every address"


def test_compose_mounts_exist_and_monitoring_is_provisioned():
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
    prometheus = yaml.safe_load((DOCKER / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["tensorfleet-api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["tensorfleet-api"]["metrics_path"] == "/metrics"
    port = int(services["worker-cpu"]["environment"]["TENSORFLEET_WORKER_METRICS_PORT"])
    workers = jobs["tensorfleet-workers"]["dns_sd_configs"][0]
    assert workers["port"] == port and {"worker-cpu", "worker-gpu"} <= set(workers["names"])
    assert "api" in services["api"]["environment"]["ALLOWED_HOSTS"], "Prometheus asks for api:8000"

    datasource = yaml.safe_load((DOCKER / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DOCKER / "grafana/provisioning/dashboards/tensorfleet.yml").read_text())
    dashboards_dir = provider["providers"][0]["options"]["path"]
    assert any(v.endswith(f":{dashboards_dir}:ro") for v in services["grafana"]["volumes"])
    dashboards = list((DOCKER / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        for metric in (
            "tensorfleet_tasks_total", "tensorfleet_task_duration_seconds", "tensorfleet_queue_depth",
            "tensorfleet_job_val_accuracy", "django_http_requests_total_by_view_transport_method",
        ):  # fmt: skip
            assert metric in exprs, f"{path.name} does not chart {metric}"
        assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}


# --------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            current = ""
    return instructions


def dockerfile_copy_sources() -> list[str]:
    sources = []
    for keyword, rest in dockerfile_instructions(DOCKERFILE):
        if keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(rest)
        if any(w.startswith("--from=") for w in words):
            continue  # from another stage or image, not from the build context
        paths = [w for w in words if not w.startswith("--")]
        sources.extend(paths[:-1])
    return sources


def _dockerignore_excludes(path: str) -> bool:
    import fnmatch

    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(p, pattern.removeprefix("**/")) for p in prefixes):
            excluded = not negate
    return excluded


def test_dockerfile_copies_only_files_that_exist_and_are_in_the_context():
    sources = dockerfile_copy_sources()
    assert "requirements.txt" in sources and "manage.py" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which does not exist"
        assert not _dockerignore_excludes(source.rstrip("/")), f".dockerignore excludes {source}"


def test_dockerfile_copies_every_local_django_app():
    from django.conf import settings

    copied = {source.rstrip("/") for source in dockerfile_copy_sources()}
    local_apps = {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()}
    assert local_apps and local_apps <= copied, f"not copied into the image: {sorted(local_apps - copied)}"
    assert "tensorfleet_site" in copied


def test_dockerfile_variants_non_root_and_torch_index():
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.MULTILINE | re.IGNORECASE)
    names = {name for _, name in stages}
    assert {"cpu", "cuda"} <= names
    assert stages[-1][1] == "cpu", "a plain `docker build` gives the CPU image"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.MULTILINE)
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==\d", requirements, re.MULTILINE), "the Dockerfile reads torch's pin from here"
    # Both final stages switch to the unprivileged user.
    for stage in ("cuda", "cpu"):
        body = re.split(rf"^FROM \S+ AS {stage}\s*$", text, flags=re.MULTILINE)[1].split("\nFROM ")[0]
        assert re.search(r"^USER 10001", body, re.MULTILINE), stage
    # Compose builds exactly these targets.
    for service in compose()["services"].values():
        if "build" in service:
            assert service["build"]["target"] in names
            assert (DOCKER / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE


# --------------------------------------------------------------------------- commands


def _substitute(text: str) -> str:
    """Compose interpolation with the defaults (what runs when .env sets nothing)."""
    return _INTERPOLATION.sub(lambda m: m.group(3) or "", text).replace("$$", "$")


_SHELL_KEYWORDS = {"until", "while", "do", "done", "if", "then", "fi", "else", "exec"}


def _split_shell(script: str) -> list[list[str]]:
    """Simple commands of a `sh -c` script (enough for the one-liners used here)."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, current = [], []
    for token in lexer:
        if token in {";", "&&", "||", "|", "&"}:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    result = []
    for words in commands:
        while words and words[0] in _SHELL_KEYWORDS:
            words = words[1:]
        if words:
            result.append(words)
    return result


def _app_commands(argv: list[str]) -> list[list[str]]:
    if argv[:2] in (["sh", "-c"], ["/bin/sh", "-c"], ["bash", "-c"]):
        return [c for c in _split_shell(argv[2]) if c[0] in {"python", "celery", "gunicorn"}]
    return [argv]


def collected_commands() -> list[tuple[str, list[str]]]:
    """Every command our image runs in compose (default interpolation) and in k8s, probes included."""
    found = []
    for name, service in compose()["services"].items():
        if image_name(_substitute(service.get("image", ""))) not in APP_IMAGES:
            continue
        command = service.get("command")
        assert command, f"compose service {name} must say what it runs"
        argv = (
            [_substitute(str(a)) for a in command] if isinstance(command, list) else shlex.split(_substitute(command))
        )
        found += [(f"compose:{name}", c) for c in _app_commands(argv)]
        test = service.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD-SHELL"]:
            found += [(f"compose:{name}:healthcheck", c) for c in _split_shell(_substitute(test[1]))]
        elif test[:1] == ["CMD"]:
            found += [(f"compose:{name}:healthcheck", c) for c in _app_commands([_substitute(a) for a in test[1:]])]
    for workload, pod in pod_specs():
        for container in containers(pod):
            if image_name(container["image"]) not in APP_IMAGES:
                continue
            where = f"k8s:{workload}/{container['name']}"
            argv = [*container.get("command", []), *container.get("args", [])]
            assert argv, f"{where} must say what it runs"
            found += [(where, c) for c in _app_commands(argv)]
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                exec_ = container.get(probe, {}).get("exec")
                if exec_:
                    found += [(f"{where}:{probe}", c) for c in _app_commands(exec_["command"])]
    return found


def test_commands_are_collected_from_every_app_service():
    where = [w for w, _ in collected_commands()]
    services = {w.split(":")[1] for w in where if w.startswith("compose:")}
    assert {"api", "worker-cpu", "worker-gpu", "beat", "control-worker", "flower", "migrate", "buckets"} <= services
    workloads = {w.split(":")[1].rsplit("/", 1)[0] for w in where if w.startswith("k8s:")}
    assert {
        "Job/tensorfleet-migrate", "Deployment/tensorfleet-api", "Deployment/tensorfleet-worker-cpu",
        "Deployment/tensorfleet-worker-gpu", "Deployment/tensorfleet-beat", "Deployment/tensorfleet-flower",
        "Deployment/tensorfleet-worker-control",
    } <= workloads  # fmt: skip
    programs = {argv[0] for _, argv in collected_commands()}
    assert programs == {"python", "celery", "gunicorn"}, programs


def _check_manage_py(args: list[str]) -> None:
    from django.core.management import get_commands, load_command_class

    assert args, "manage.py without a command"
    name, rest = args[0], args[1:]
    commands = get_commands()
    assert name in commands, f"manage.py has no command {name!r}"
    command = load_command_class(commands[name], name)
    parser = command.create_parser("manage.py", name)
    parser.parse_args(rest)  # raises CommandError on an unknown option


def _check_celery(args: list[str]) -> None:
    from celery.app.utils import find_app
    from celery.bin.base import CLIContext
    from celery.bin.celery import celery
    from django.conf import settings

    context = celery.make_context("celery", list(args))
    app = find_app(context.params["app"])  # the -A path must import and hold a Celery app
    assert app.main == "tensorfleet"
    context.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # click's protected_args
        rest = [*context.protected_args, *context.args]
    name, command, rest = celery.resolve_command(context, rest)
    assert name in {"worker", "beat", "flower", "inspect"}, name
    sub = command.make_context(name, rest, parent=context)
    if name == "worker":
        queues = sub.params["queues"]
        queues = set(queues.split(",") if isinstance(queues, str) else queues)
        hostname = sub.params["hostname"]
        assert hostname and "@" in hostname
        control = settings_default("TENSORFLEET_CONTROL_QUEUE")
        if hostname.startswith("control@") or not queues <= set(settings.TENSORFLEET_QUEUES):
            # The reconciler's worker: the control queue alone (never behind training), one at a time.
            assert queues == {control}, f"the control worker must consume {control!r} only, not {queues}"
            assert sub.params["concurrency"] == 1
        else:
            assert queues <= set(settings.TENSORFLEET_QUEUES), f"unknown queue in {queues}"
    elif name == "flower":
        from flower.options import options

        known = set(options.as_dict())
        for option in sub.params["tornado_argv"]:
            key = option.removeprefix("--").split("=", 1)[0].replace("-", "_")
            assert key in known, f"flower has no option {option}"
    elif name == "inspect":
        assert sub.params["command"] == "ping"


def _check_gunicorn(args: list[str]) -> None:
    import importlib

    from gunicorn.config import Config

    parsed = Config().parser().parse_args(args)  # exits on an unknown option
    assert len(parsed.args) == 1, parsed.args
    module, _, attribute = parsed.args[0].partition(":")
    application = getattr(importlib.import_module(module), attribute)
    assert callable(application)


@pytest.mark.parametrize("where,argv", collected_commands(), ids=[w for w, _ in collected_commands()])
def test_command_exists_in_the_application(where, argv):
    program, args = argv[0], argv[1:]
    if program == "python":
        if args[:2] == ["-m", "celery"]:
            _check_celery(args[2:])
        elif args[:1] == ["-c"]:
            compile(args[1], where, "exec")
        else:
            assert args[:1] == ["manage.py"], argv
            _check_manage_py(args[1:])
    elif program == "celery":
        _check_celery(args)
    elif program == "gunicorn":
        _check_gunicorn(args)
    else:
        pytest.fail(f"{where}: unexpected program {program}")
