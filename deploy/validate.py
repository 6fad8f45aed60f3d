"""Offline checks of deploy/: YAML, Kubernetes manifests, KEDA, compose, the
Dockerfile, the config examples and the Prometheus rules.

Run by deploy/validate.sh, which installs what this needs (PyYAML,
kubernetes-validate, jsonschema, promtool) and passes the tools' paths.
Every problem is reported as `FAIL <file>: <what is wrong>`; the exit status
is 1 when there is any.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import kubernetes_validate
import yaml

# Kubernetes versions the core manifests must be valid for: the oldest we
# claim to support and the newest kubernetes-validate knows.
OLDEST_KUBERNETES = "1.29.0"

# The job kinds (src/jobs/mod.rs, JobKind::as_str). KEDA's Redis list names
# are built from them; check_sources_agree() fails if the source drifts.
JOB_KINDS = (
    "import_orders",
    "fetch_tracking",
    "refresh_status",
    "create_invoice",
    "send_sms",
    "cancel_invoice",
    "record_payment",
    "write_back",
)

# What the api and the workers export (README.md, "Metrics"). Alert rules may
# only use these, so a typo in a rule cannot make an alert silently never fire.
EXPORTED_METRICS = {
    "ordersync_queue_jobs",
    "ordersync_queue_oldest_pending_seconds",
    "ordersync_queue_workers",
    "ordersync_failed_jobs",
    "ordersync_store_last_success_age_seconds",
    "ordersync_store_tracking_coverage_ratio",
    "ordersync_jobs_total",
    "ordersync_job_duration_seconds",
    "ordersync_job_queue_lag_seconds",
    "ordersync_provider_requests_total",
    "ordersync_worker_processes",
    "ordersync_queue_missing_jobs",
    "ordersync_sms_unknown",
    "ordersync_reconciled_jobs_total",
    "ordersync_breaker_state",
    "ordersync_breaker_transitions_total",
}

# README.md sections the alerts link to.
RUNBOOK_ANCHORS = {
    "README.md#runbook-failures-rising",
    "README.md#runbook-queue-backing-up",
    "README.md#runbook-store-stale",
    "README.md#runbook-jobs-missing-from-redis",
    "README.md#runbook-texts-of-unknown-fate",
    "README.md#runbook-circuit-breaker-open",
}

# A worker drains in-flight jobs for ORDERSYNC_SHUTDOWN_TIMEOUT (default 30 s)
# after SIGTERM; Docker and the kubelet must wait longer before SIGKILL.
WORKER_SHUTDOWN_TIMEOUT_SECONDS = 30

# The Secret the manifests read and deploy/README.md tells operators to create.
SECRET_NAME = "ordersync-secrets"


class Report:
    """Collects failures; prints one line per check."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.failures = 0

    def rel(self, path: Path | str) -> str:
        path = Path(path)
        try:
            return str(path.resolve().relative_to(self.repo))
        except ValueError:
            return str(path)

    def fail(self, path: Path | str, message: str) -> None:
        self.failures += 1
        print(f"FAIL {self.rel(path)}: {message}", flush=True)

    def ok(self, what: str, detail: str) -> None:
        print(f"ok   {what}: {detail}", flush=True)

    def skip(self, what: str, why: str) -> None:
        print(f"skip {what}: {why}", flush=True)


# --- YAML -------------------------------------------------------------------


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML keeps the last one
    silently, which hides a half-edited manifest)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def load_yaml_documents(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=StrictLoader) if doc is not None]


def check_yaml(report: Report, deploy: Path) -> dict[Path, list[Any]]:
    """Parse every YAML file under deploy/; return the documents per file."""
    parsed: dict[Path, list[Any]] = {}
    files = sorted(p for p in deploy.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in files:
        try:
            parsed[path] = load_yaml_documents(path.read_text())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = getattr(error, "problem", None) or str(error)
            report.fail(path, f"invalid YAML: {where}{problem}")
    if len(parsed) == len(files):
        report.ok("yaml", f"{len(files)} files parse, no duplicate keys")
    return parsed


# --- helpers ----------------------------------------------------------------


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    for key in path:
        if isinstance(obj, dict) and isinstance(key, str):
            obj = obj.get(key)
        elif isinstance(obj, list) and isinstance(key, int) and key < len(obj):
            obj = obj[key]
        else:
            return default
        if obj is None:
            return default
    return obj


def minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def object_name(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{dig(doc, 'metadata', 'name', default='?')}"


def duration_seconds(text: str) -> float | None:
    """`40s`, `1m30s`, `2h` (compose's duration format) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        return None
    return sum(float(n) * units[u] for n, u in parts)


def pod_spec(doc: dict) -> dict | None:
    if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        return dig(doc, "spec", "template", "spec")
    return None


# --- Kubernetes ---------------------------------------------------------------


def check_kubernetes(report: Report, deploy: Path, parsed: dict[Path, list[Any]], kubectl: str | None) -> None:
    k8s = deploy / "k8s"
    kustomization_path = k8s / "kustomization.yaml"
    kustomization = (parsed.get(kustomization_path) or [None])[0]
    if not isinstance(kustomization, dict):
        report.fail(kustomization_path, "missing or empty: the manifests are applied with `kubectl apply -k deploy/k8s`")
        return

    listed = [str(r) for r in kustomization.get("resources") or []]
    for resource in listed:
        if not (k8s / resource).is_file():
            report.fail(kustomization_path, f"resources lists {resource}, which does not exist")
    for path in sorted(k8s.glob("*.yaml")):
        if path.name != "kustomization.yaml" and path.name not in listed:
            report.fail(kustomization_path, f"{path.name} is not listed in resources, so `kubectl apply -k` would never apply it")
    if "namespace" in kustomization:
        report.fail(kustomization_path, "sets `namespace`; the base must stay namespace-agnostic (set it in an overlay or with -n)")

    generated_config_maps: set[str] = set()
    env_literals: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator") or []:
        generated_config_maps.add(generator.get("name"))
        for entry in generator.get("files") or []:
            source = str(entry).split("=", 1)[-1]
            if not (k8s / source).is_file():
                report.fail(kustomization_path, f"configMapGenerator {generator.get('name')} reads {source}, which does not exist")
        for literal in generator.get("literals") or []:
            key, _, value = str(literal).partition("=")
            env_literals[key] = value
    namespace = env_literals.get("ORDERSYNC_NAMESPACE")
    if not namespace:
        report.fail(kustomization_path, "no ORDERSYNC_NAMESPACE literal in configMapGenerator: KEDA's list names and query depend on it")

    docs: list[tuple[Path, dict]] = []
    for resource in listed:
        path = k8s / resource
        for doc in parsed.get(path, []):
            if not isinstance(doc, dict):
                report.fail(path, "a document is not a mapping")
                continue
            docs.append((path, doc))

    failures = report.failures
    core = validate_schemas(report, docs)
    check_workloads(report, docs, generated_config_maps)
    if report.failures == failures:
        report.ok("k8s", f"{core} objects valid against Kubernetes {minor(OLDEST_KUBERNETES)} and {minor(kubernetes_validate.utils.latest_version())} schemas (strict); workload policy checked")

    if kubectl:
        render_kustomization(report, k8s, kubectl)
    else:
        report.skip("kustomize build", "kubectl is not installed; the listed manifests were checked one by one")
    check_keda(report, docs, namespace or "ordersync")


# Kinds without a Kubernetes schema, checked by check_keda() instead.
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"), ("keda.sh/v1alpha1", "TriggerAuthentication")}


def validate_schemas(report: Report, docs: list[tuple[Path, dict]]) -> int:
    newest = kubernetes_validate.utils.latest_version()
    valid = 0
    for path, doc in docs:
        for required in ("apiVersion", "kind"):
            if not doc.get(required):
                report.fail(path, f"a document has no {required}")
        if not dig(doc, "metadata", "name"):
            report.fail(path, f"{doc.get('kind')} has no metadata.name")
            continue
        if dig(doc, "metadata", "namespace"):
            report.fail(path, f"{object_name(doc)} sets metadata.namespace; the manifests must stay namespace-agnostic")
        if doc.get("kind") == "Secret":
            report.fail(path, f"{object_name(doc)}: Secrets are never committed; deploy/README.md documents `kubectl create secret`")
        if (doc.get("apiVersion"), doc.get("kind")) in CUSTOM_KINDS:
            continue
        ok = True
        for version in (OLDEST_KUBERNETES, newest):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                where = ".".join(str(p) for p in error.path) or "(top level)"
                report.fail(path, f"{object_name(doc)} is invalid for Kubernetes {error.version}: {where}: {error.message}")
                ok = False
                break
            except kubernetes_validate.SchemaNotFoundError:
                report.fail(path, f"{object_name(doc)}: no Kubernetes schema for {doc.get('apiVersion')} {doc.get('kind')} (a typo, or a custom resource this check does not know)")
                ok = False
                break
        valid += ok
    return valid


def check_workloads(report: Report, docs: list[tuple[Path, dict]], config_maps: set[str]) -> None:
    """What the schema cannot say: hardening, probes, resources, wiring."""
    workloads = [(p, d) for p, d in docs if pod_spec(d) is not None]
    images: set[str] = set()
    scaled_targets = {
        dig(d, "spec", "scaleTargetRef", "name") for _, d in docs if d.get("kind") == "ScaledObject"
    }
    pod_labels: list[tuple[str, dict]] = []

    for path, doc in workloads:
        name = object_name(doc)
        spec = pod_spec(doc) or {}
        labels = dig(doc, "spec", "template", "metadata", "labels", default={})
        pod_labels.append((name, labels))
        selector = dig(doc, "spec", "selector", "matchLabels")
        if doc["kind"] != "Job" and selector is not None:
            for key, value in selector.items():
                if labels.get(key) != value:
                    report.fail(path, f"{name}: selector {key}={value} does not match the pod template's labels")
        security = spec.get("securityContext") or {}
        if security.get("runAsNonRoot") is not True:
            report.fail(path, f"{name}: securityContext.runAsNonRoot must be true")
        if dig(security, "seccompProfile", "type") != "RuntimeDefault":
            report.fail(path, f"{name}: securityContext.seccompProfile.type must be RuntimeDefault")
        if spec.get("automountServiceAccountToken") is not False:
            report.fail(path, f"{name}: automountServiceAccountToken must be false (ordersync never calls the Kubernetes API)")
        volumes = {v.get("name"): v for v in spec.get("volumes") or []}
        for volume in volumes.values():
            config_map = dig(volume, "configMap", "name")
            if config_map and config_map not in config_maps:
                report.fail(path, f"{name}: volume {volume.get('name')} mounts ConfigMap {config_map}, which kustomization.yaml does not generate")

        for container in spec.get("containers") or []:
            where = f"{name} container {container.get('name')}"
            images.add(str(container.get("image", "")).split(":")[0])
            csc = container.get("securityContext") or {}
            if csc.get("allowPrivilegeEscalation") is not False:
                report.fail(path, f"{where}: securityContext.allowPrivilegeEscalation must be false")
            if csc.get("readOnlyRootFilesystem") is not True:
                report.fail(path, f"{where}: securityContext.readOnlyRootFilesystem must be true")
            if "ALL" not in (dig(csc, "capabilities", "drop") or []):
                report.fail(path, f"{where}: securityContext.capabilities.drop must contain ALL")
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if not dig(container, "resources", bound, resource):
                        report.fail(path, f"{where}: resources.{bound}.{resource} is not set")
            for source in container.get("envFrom") or []:
                config_map = dig(source, "configMapRef", "name")
                if config_map and config_map not in config_maps:
                    report.fail(path, f"{where}: envFrom ConfigMap {config_map} is not generated by kustomization.yaml")
                secret = dig(source, "secretRef", "name")
                if secret and secret != SECRET_NAME:
                    report.fail(path, f"{where}: envFrom Secret {secret}; deploy/README.md documents only {SECRET_NAME}")
            for env in container.get("env") or []:
                secret = dig(env, "valueFrom", "secretKeyRef", "name")
                if secret and secret != SECRET_NAME:
                    report.fail(path, f"{where}: env {env.get('name')} reads Secret {secret}; deploy/README.md documents only {SECRET_NAME}")
            for mount in container.get("volumeMounts") or []:
                if mount.get("name") not in volumes:
                    report.fail(path, f"{where}: mounts volume {mount.get('name')}, which the pod does not define")
            ports = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
            for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
                port = dig(container, probe_name, "httpGet", "port")
                if port is not None and port not in ports and port not in ports.values():
                    report.fail(path, f"{where}: {probe_name} uses port {port}, which the container does not declare")
            if ports:  # serves HTTP: api and worker
                if dig(container, "readinessProbe", "httpGet", "path") != "/readyz":
                    report.fail(path, f"{where}: readinessProbe must GET /readyz (Redis and Postgres reachable)")
                if dig(container, "livenessProbe", "httpGet", "path") != "/healthz":
                    report.fail(path, f"{where}: livenessProbe must GET /healthz (process up), so an outage of Redis or Postgres does not restart it")
                annotations = dig(doc, "spec", "template", "metadata", "annotations", default={})
                if annotations.get("prometheus.io/scrape") != "true" or str(annotations.get("prometheus.io/port")) not in {str(p) for p in ports.values()}:
                    report.fail(path, f"{where}: pod template needs prometheus.io/scrape \"true\" and prometheus.io/port naming its metrics port")
            command = container.get("command") or []
            if command[:1] == ["ordersync-worker"]:
                grace = spec.get("terminationGracePeriodSeconds", 30)
                if grace <= WORKER_SHUTDOWN_TIMEOUT_SECONDS:
                    report.fail(path, f"{name}: terminationGracePeriodSeconds {grace} must exceed the worker's {WORKER_SHUTDOWN_TIMEOUT_SECONDS} s shutdown timeout, or in-flight jobs are killed")
                if dig(doc, "metadata", "name") in scaled_targets and "replicas" in doc.get("spec", {}):
                    report.fail(path, f"{name} sets spec.replicas, but a KEDA ScaledObject owns its replica count: every apply would reset it")
    if len(images) > 1:
        report.fail(workloads[0][0] if workloads else "deploy/k8s", f"workloads use different images {sorted(images)}; every role runs the one ordersync image")

    for path, doc in docs:
        kind = doc.get("kind")
        if kind == "Service":
            selector = dig(doc, "spec", "selector", default={})
            matching = [n for n, labels in pod_labels if all(labels.get(k) == v for k, v in selector.items())]
            if not selector or not matching:
                report.fail(path, f"{object_name(doc)}: selector {selector} matches no pod template")
        if kind == "PodDisruptionBudget":
            selector = dig(doc, "spec", "selector", "matchLabels", default={})
            matching = [n for n, labels in pod_labels if all(labels.get(k) == v for k, v in selector.items())]
            if not selector or not matching:
                report.fail(path, f"{object_name(doc)}: selector {selector} matches no pod template")


def check_keda(report: Report, docs: list[tuple[Path, dict]], namespace: str) -> None:
    """KEDA custom resources: the fields KEDA requires, and ours."""
    deployments = {dig(d, "metadata", "name") for _, d in docs if d.get("kind") == "Deployment"}
    auths: dict[str, dict] = {dig(d, "metadata", "name"): d for _, d in docs if d.get("kind") == "TriggerAuthentication"}
    list_pattern = re.compile(rf"^{re.escape(namespace)}:({'|'.join(JOB_KINDS)})(:bulk)?:active$")
    checked = 0
    failures = report.failures

    for path, doc in docs:
        kind = doc.get("kind")
        if kind == "TriggerAuthentication":
            checked += 1
            refs = dig(doc, "spec", "secretTargetRef")
            if not isinstance(refs, list) or not refs:
                report.fail(path, f"{object_name(doc)}: spec.secretTargetRef must be a non-empty list")
                continue
            for ref in refs:
                for field in ("parameter", "name", "key"):
                    if not isinstance(ref, dict) or not isinstance(ref.get(field), str) or not ref.get(field):
                        report.fail(path, f"{object_name(doc)}: every secretTargetRef needs a string {field}")
                if isinstance(ref, dict) and ref.get("name") not in (None, SECRET_NAME):
                    report.fail(path, f"{object_name(doc)}: reads Secret {ref.get('name')}; deploy/README.md documents only {SECRET_NAME}")
            continue
        if kind != "ScaledObject":
            continue
        checked += 1
        name = object_name(doc)
        if doc.get("apiVersion") != "keda.sh/v1alpha1":
            report.fail(path, f"{name}: apiVersion must be keda.sh/v1alpha1")
        spec = doc.get("spec") or {}
        known = {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod", "idleReplicaCount",
                 "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers"}
        for key in spec:
            if key not in known:
                report.fail(path, f"{name}: spec.{key} is not a ScaledObject field")
        target = dig(spec, "scaleTargetRef", "name")
        if not target:
            report.fail(path, f"{name}: spec.scaleTargetRef.name is required")
        elif target not in deployments:
            report.fail(path, f"{name}: scaleTargetRef {target} is not a Deployment in these manifests")
        for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            if field in spec and (not isinstance(spec[field], int) or spec[field] < 0):
                report.fail(path, f"{name}: spec.{field} must be a non-negative integer")
        low, high = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if isinstance(low, int) and isinstance(high, int):
            if low > high:
                report.fail(path, f"{name}: minReplicaCount {low} exceeds maxReplicaCount {high}")
            if low < 1:
                report.fail(path, f"{name}: minReplicaCount must be at least 1: workers also promote delayed retries, which no trigger sees")
            fallback = spec.get("fallback")
            if fallback is not None:
                if not isinstance(fallback.get("failureThreshold"), int) or not isinstance(fallback.get("replicas"), int):
                    report.fail(path, f"{name}: fallback needs integer failureThreshold and replicas")
                elif not low <= fallback["replicas"] <= high:
                    report.fail(path, f"{name}: fallback.replicas {fallback['replicas']} is outside {low}..{high}")
        triggers = spec.get("triggers")
        if not isinstance(triggers, list) or not triggers:
            report.fail(path, f"{name}: spec.triggers must be a non-empty list")
            continue
        for index, trigger in enumerate(triggers):
            where = f"{name} trigger {index}"
            metadata = trigger.get("metadata") if isinstance(trigger, dict) else None
            if not isinstance(metadata, dict):
                report.fail(path, f"{where}: needs type and metadata")
                continue
            for key, value in metadata.items():
                if not isinstance(value, str):
                    report.fail(path, f"{where}: metadata.{key} is {value!r}; KEDA's metadata values are strings, quote it")
            auth = dig(trigger, "authenticationRef", "name")
            if auth is not None and auth not in auths:
                report.fail(path, f"{where}: authenticationRef {auth} is not a TriggerAuthentication in these manifests")
            kind_of_trigger = trigger.get("type")
            if kind_of_trigger == "prometheus":
                for field in ("serverAddress", "query", "threshold"):
                    if not metadata.get(field):
                        report.fail(path, f"{where}: prometheus trigger needs metadata.{field}")
                if metadata.get("serverAddress") and not re.match(r"^https?://", str(metadata["serverAddress"])):
                    report.fail(path, f"{where}: serverAddress must be an http(s) URL")
                if not re.fullmatch(r"\d+(\.\d+)?", str(metadata.get("threshold", ""))):
                    report.fail(path, f"{where}: threshold must be a number")
                query = str(metadata.get("query", ""))
                if f'queue=~"{namespace}:' not in query:
                    report.fail(path, f"{where}: query must select this installation's queues with queue=~\"{namespace}:...\" (ORDERSYNC_NAMESPACE)")
                for metric in re.findall(r"\bordersync_[a-z_]+", query):
                    if metric not in EXPORTED_METRICS:
                        report.fail(path, f"{where}: query uses {metric}, which ordersync does not export")
            elif kind_of_trigger == "redis":
                list_name = str(metadata.get("listName", ""))
                if not list_pattern.match(list_name):
                    report.fail(path, f"{where}: listName {list_name!r} is not an active list `{namespace}:<kind>[:bulk]:active` with kind in {', '.join(JOB_KINDS)}")
                if not re.fullmatch(r"[1-9]\d*", str(metadata.get("listLength", ""))):
                    report.fail(path, f"{where}: listLength must be a positive integer")
                parameters = {r.get("parameter") for r in dig(auths.get(auth, {}), "spec", "secretTargetRef", default=[])} if auth else set()
                if not ({"address", "addressFromEnv", "host"} & (set(metadata) | parameters)):
                    report.fail(path, f"{where}: redis trigger needs an address (metadata or TriggerAuthentication)")
            else:
                report.fail(path, f"{where}: type {kind_of_trigger!r} has no check here (prometheus and redis do); add one")
    if checked and report.failures == failures:
        report.ok("keda", f"{checked} objects: required fields, targets, list names and query checked")


def render_kustomization(report: Report, k8s: Path, kubectl: str) -> None:
    result = subprocess.run([kubectl, "kustomize", str(k8s)], capture_output=True, text=True)
    if result.returncode != 0:
        report.fail(k8s / "kustomization.yaml", f"`kubectl kustomize` failed: {result.stderr.strip()}")
        return
    docs = [d for d in load_yaml_documents(result.stdout) if isinstance(d, dict)]
    # Problems in the rendered output are reported against the build, since
    # they may come from a generator or a transformer rather than one file.
    rendered = [(k8s / "kustomization.yaml (rendered)", d) for d in docs]
    failures = report.failures
    validate_schemas(report, rendered)
    generated = {dig(d, "metadata", "name") for d in docs if d.get("kind") == "ConfigMap"}
    for _, doc in rendered:
        for volume in dig(pod_spec(doc) or {}, "volumes", default=[]):
            name = dig(volume, "configMap", "name")
            if name and name not in generated:
                report.fail(k8s / "kustomization.yaml", f"rendered {object_name(doc)} mounts ConfigMap {name}, which the build does not contain")
    if report.failures == failures:
        report.ok("kustomize build", f"{len(docs)} objects rendered by `kubectl kustomize` and valid")


# --- docker compose -----------------------------------------------------------


def in_git_work_tree(path: Path) -> bool:
    if not shutil.which("git"):
        return False
    result = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "true"


def check_compose(report: Report, deploy: Path, parsed: dict[Path, list[Any]], docker: str | None, compose_schema: Path | None) -> None:
    path = deploy / "compose.yaml"
    compose = (parsed.get(path) or [None])[0]
    if not isinstance(compose, dict):
        report.fail(path, "missing or empty")
        return
    failures = report.failures
    services: dict[str, dict] = compose.get("services") or {}
    volumes = set((compose.get("volumes") or {}).keys())
    env_example = deploy / "env.example"
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", env_example.read_text(), re.M)) if env_example.is_file() else set()
    if not env_example.is_file():
        report.fail(env_example, "missing: it documents the variables deploy/.env must set")

    text = path.read_text()
    for variable in sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))):
        if variable not in documented:
            report.fail(path, f"requires ${{{variable}}}, which deploy/env.example does not list")

    for name, service in services.items():
        where = f"service {name}"
        depends_on = service.get("depends_on") or {}
        if isinstance(depends_on, list):  # short form: started, no condition
            depends_on = {name: {"condition": "service_started"} for name in depends_on}
        for dependency, condition in depends_on.items():
            target = services.get(dependency)
            if target is None:
                report.fail(path, f"{where} depends on {dependency}, which is not a service")
                continue
            condition = (condition or {}).get("condition")
            if condition == "service_healthy" and not target.get("healthcheck"):
                report.fail(path, f"{where} waits for {dependency} to be healthy, but {dependency} has no healthcheck")
            if condition == "service_completed_successfully" and target.get("restart", "no") != "no":
                report.fail(path, f"{where} waits for {dependency} to complete, but {dependency} restarts (restart: \"no\" for a one-shot)")
        for volume in service.get("volumes") or []:
            if isinstance(volume, str):  # short syntax: SOURCE:TARGET[:MODE]
                source = volume.split(":")[0]
                kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
            else:
                source, kind = volume.get("source", ""), volume.get("type", "volume")
            if kind == "volume" and source not in volumes:
                report.fail(path, f"{where} uses volume {source}, which is not declared under volumes:")
            if kind == "bind" and "$" not in source and not (deploy / source).exists():
                report.fail(path, f"{where} mounts {source}, which does not exist")
        replicas = dig(service, "deploy", "replicas", default=1)
        if isinstance(replicas, int) and replicas > 1 and service.get("container_name"):
            report.fail(path, f"{where} has replicas and a container_name; replicas need generated names")
        command = service.get("command") or []
        if command[:1] == ["ordersync-worker"]:
            grace = duration_seconds(service.get("stop_grace_period", "10s"))
            if grace is None or grace <= WORKER_SHUTDOWN_TIMEOUT_SECONDS:
                report.fail(path, f"{where}: stop_grace_period must exceed the worker's {WORKER_SHUTDOWN_TIMEOUT_SECONDS} s shutdown timeout")
            if not dig(service, "deploy", "replicas"):
                report.fail(path, f"{where}: set deploy.replicas")
        if command[:1] in (["ordersync"], ["ordersync-worker"]):
            if dig(service, "build", "dockerfile") != "deploy/Dockerfile":
                report.fail(path, f"{where}: must build deploy/Dockerfile (one image for every role)")
            waits_for_migrate = dig(depends_on, "migrate", "condition") == "service_completed_successfully"
            if command[:2] != ["ordersync", "migrate"] and not waits_for_migrate:
                report.fail(path, f"{where} must wait for migrate with condition: service_completed_successfully")
            if service.get("read_only") is not True or "ALL" not in (service.get("cap_drop") or []):
                report.fail(path, f"{where}: set read_only: true and cap_drop: [ALL]")
        if command[:2] == ["ordersync", "api"] or command[:1] == ["ordersync-worker"]:
            test = " ".join(dig(service, "healthcheck", "test", default=[]))
            if "/readyz" not in test:
                report.fail(path, f"{where}: healthcheck must probe /readyz")

    redis = services.get("redis")
    if redis is None:
        report.fail(path, "no redis service")
    else:
        command = [str(c) for c in redis.get("command") or []]
        pairs = dict(zip(command, command[1:]))
        if pairs.get("--appendonly") != "yes" or pairs.get("--appendfsync") != "everysec":
            report.fail(path, "redis must run with --appendonly yes --appendfsync everysec: jobs live in Redis")
        if pairs.get("--maxmemory-policy", "noeviction") != "noeviction":
            report.fail(path, "redis must keep maxmemory-policy noeviction: an evicted key is a lost job")

    env_file_default = re.search(r"env_file:\s*\$\{ORDERSYNC_ENV_FILE:-([^}]+)\}", text)
    if not env_file_default:
        report.fail(path, "the ordersync services need `env_file: ${ORDERSYNC_ENV_FILE:-.env}` (secrets from a git-ignored file)")
    elif in_git_work_tree(deploy):
        env_path = deploy / env_file_default.group(1)
        ignored = subprocess.run(["git", "-C", str(deploy), "check-ignore", "-q", str(env_path)])
        if ignored.returncode != 0:
            report.fail(path, f"the env file {report.rel(env_path)} holds secrets but is not git-ignored")
        tracked = subprocess.run(["git", "-C", str(deploy), "ls-files", "--", "*.env", ".env"], capture_output=True, text=True)
        for leaked in tracked.stdout.split():
            report.fail(deploy / leaked, "an env file is committed; env files hold secrets")

    config = deploy / "ordersync.example.toml"
    if config.is_file() and env_example.is_file():
        try:
            named = secret_variables(tomllib.loads(config.read_text()))
        except tomllib.TOMLDecodeError:
            named = set()  # reported by check_configs
        for variable in sorted(named - documented):
            report.fail(env_example, f"does not list {variable}, which {config.name} names")

    validated_by = validate_compose_file(report, deploy, path, compose, docker, compose_schema)
    if report.failures == failures:
        report.ok("compose", f"{len(services)} services; {validated_by}; dependencies, volumes, healthchecks, hardening and secrets checked")


def validate_compose_file(report: Report, deploy: Path, path: Path, compose: dict, docker: str | None, schema_path: Path | None) -> str:
    if docker:
        with tempfile.TemporaryDirectory() as scratch:
            env_file = Path(scratch) / "validate.env"
            env_file.write_text("POSTGRES_PASSWORD=validate-only\nREDIS_PASSWORD=validate-only\n")
            env = dict(os.environ, ORDERSYNC_ENV_FILE=str(env_file), ORDERSYNC_CONFIG_FILE=str(deploy / "ordersync.example.toml"))
            result = subprocess.run(
                [docker, "compose", "--project-directory", str(deploy), "--env-file", str(env_file), "-f", str(path), "--profile", "monitoring", "config", "-q"],
                capture_output=True, text=True, env=env,
            )
        if result.returncode != 0:
            report.fail(path, f"`docker compose config` rejects it: {result.stderr.strip()}")
        return "`docker compose config` accepts it"
    if schema_path is None:
        report.fail(path, "no way to validate: neither `docker compose` nor the compose schema is available")
        return "not validated"
    schema = json.loads(schema_path.read_text())
    # The schema comes from docker-compose 1.29 and predates the top-level
    # project `name` of today's Compose Specification.
    schema.setdefault("properties", {}).setdefault("name", {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"})
    validator = jsonschema.Draft201909Validator(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(top level)"
        report.fail(path, f"compose schema: {where}: {error.message}")
    return "valid against the Compose Specification schema (docker compose is not installed)"


# --- Dockerfile -----------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[int, str, str]]:
    """(line, INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    instructions, buffer, start = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        word, _, rest = buffer.partition(" ")
        instructions.append((start, word.upper(), rest.strip()))
        buffer = ""
    return instructions


def check_dockerfile(report: Report, repo: Path, deploy: Path) -> None:
    path = deploy / "Dockerfile"
    if not path.is_file():
        report.fail(path, "missing")
        return
    failures = report.failures
    instructions = dockerfile_instructions(path.read_text())
    stages: list[dict] = []
    for line, word, args in instructions:
        if word == "FROM":
            match = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            stages.append({"line": line, "image": match.group(1), "name": (match.group(2) or "").lower(), "steps": []})
        elif stages:
            stages[-1]["steps"].append((line, word, args))
    if len(stages) < 2:
        report.fail(path, f"{len(stages)} stage(s); it must be multi-stage (a Rust builder, then a small runtime)")
        return
    builder_names = {s["name"] for s in stages[:-1] if s["name"]}
    final = stages[-1]

    users = [args for _, word, args in final["steps"] if word == "USER"]
    if not users:
        report.fail(path, f"the final stage (line {final['line']}) has no USER: the container would run as root")
    elif not re.fullmatch(r"[1-9]\d*(:\d+)?", users[-1]):
        report.fail(path, f"the final stage's USER is {users[-1]!r}; use a numeric non-root UID (e.g. 10001:10001) so Kubernetes' runAsNonRoot can verify it")

    copied: set[str] = set()
    for _, word, args in final["steps"]:
        if word == "COPY":
            source_stage = re.search(r"--from=(\S+)", args)
            if source_stage and source_stage.group(1).lower() in builder_names:
                parts = [p for p in args.split() if not p.startswith("--")]
                copied.update(Path(p).name for p in parts[:-1])
    for binary in ("ordersync", "ordersync-worker"):
        if binary not in copied:
            report.fail(path, f"the final stage does not COPY --from a build stage the {binary} binary")

    build_steps = " ".join(args for stage in stages[:-1] for _, word, args in stage["steps"] if word == "RUN")
    if "cargo build" not in build_steps:
        report.fail(path, "no build stage runs `cargo build`")
    else:
        for flag in ("--release", "--locked"):
            if flag not in build_steps:
                report.fail(path, f"`cargo build` needs {flag}")
        for cache in ("/usr/local/cargo/registry", "target"):
            if not re.search(rf"--mount=type=cache,[^ ]*target=[^ ]*{re.escape(cache)}", build_steps):
                report.fail(path, f"no BuildKit cache mount for {cache}: every build would recompile all dependencies")

    for line, word, args in instructions:
        if word == "ADD" and re.search(r"https?://", args):
            report.fail(path, f"line {line}: ADD of a URL; download with a checksum in a RUN step")
        if word in ("ENV", "ARG") and re.search(r"(KEY|SECRET|PASSWORD|TOKEN)[A-Z_]*=\S", args, re.I):
            report.fail(path, f"line {line}: {word} sets what looks like a secret; secrets come from the environment at run time")

    # The runtime stage copies no migrations: they must be compiled in.
    embedded = any("sqlx::migrate!(" in p.read_text() for p in (repo / "src" / "ledger").glob("*.rs"))
    if not embedded:
        report.fail(path, "src/ledger no longer embeds migrations with sqlx::migrate!; the runtime stage must then COPY migrations/")

    ignore = repo / ".dockerignore"
    if not ignore.is_file():
        report.fail(ignore, "missing: the build context would include target/ (gigabytes) and .git")
    else:
        entries = {line.strip().rstrip("/") for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
        for needed in ("target", ".git"):
            if needed not in entries:
                report.fail(ignore, f"does not exclude {needed}/")
    if report.failures == failures:
        report.ok("dockerfile", f"{len(stages)} stages, non-root numeric USER {users[-1]}, both binaries, cached locked build, migrations embedded")


# --- config files ---------------------------------------------------------------


def secret_variables(config: dict) -> set[str]:
    """Every environment variable a config file makes ordersync read (`*_env`
    keys; an inactive store's are never read)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("active") is False:
                return
            for key, value in node.items():
                if key.endswith("_env") and isinstance(value, str):
                    names.add(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return names


def check_configs(report: Report, repo: Path, deploy: Path, ordersync: str | None) -> None:
    configs = [deploy / "ordersync.example.toml", deploy / "k8s" / "ordersync.toml"]
    for path in configs:
        if not path.is_file():
            report.fail(path, "missing")
            continue
        try:
            config = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            report.fail(path, f"invalid TOML: {error}")
            continue
        if "admin" not in config:
            report.fail(path, "no [admin] token_env: `ordersync api` refuses to start without it")
        if not ordersync:
            report.skip(f"config {report.rel(path)}", "TOML only: no built ordersync binary (cargo build --release, or set ORDERSYNC_BIN)")
            continue
        # A clean environment with a stand-in for each secret the file names:
        # the real loader then checks the file (unknown keys, store mapping,
        # cron expressions) without any real secret or service.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
        env.update({name: "validate-only-not-a-secret" for name in secret_variables(config)})
        result = subprocess.run([ordersync, "--config", str(path), "stores"], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            report.fail(path, f"`ordersync stores` rejects it: {result.stderr.strip()}")
        else:
            stores = len(result.stdout.splitlines())
            report.ok(f"config {report.rel(path)}", f"loads with {report.rel(ordersync)} ({stores} active stores mapped)")


# --- Prometheus -------------------------------------------------------------------


def check_prometheus(report: Report, deploy: Path, parsed: dict[Path, list[Any]], promtool: str) -> None:
    directory = deploy / "prometheus"
    rules_path, tests_path, config_path = directory / "alerts.yaml", directory / "alerts_test.yaml", directory / "prometheus.yml"
    failures = report.failures
    for arguments, path in (
        (["check", "rules", str(rules_path)], rules_path),
        (["check", "config", str(config_path)], config_path),
        (["test", "rules", str(tests_path)], tests_path),
    ):
        result = subprocess.run([promtool, *arguments], capture_output=True, text=True, cwd=directory)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()
            report.fail(path, f"`promtool {' '.join(arguments[:2])}` failed:\n{output}")

    rules = (parsed.get(rules_path) or [{}])[0] or {}
    alerts = [r for g in rules.get("groups") or [] for r in g.get("rules") or [] if "alert" in r]
    for rule in alerts:
        name = rule["alert"]
        annotations = rule.get("annotations") or {}
        for field in ("summary", "description", "runbook_url"):
            if not annotations.get(field):
                report.fail(rules_path, f"{name} has no {field} annotation")
        if annotations.get("runbook_url") and annotations["runbook_url"] not in RUNBOOK_ANCHORS:
            report.fail(rules_path, f"{name}: runbook_url {annotations['runbook_url']} is none of {sorted(RUNBOOK_ANCHORS)}")
    readme = deploy.parent / "README.md"
    headings = {
        "README.md#" + re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.read_text().splitlines()
        if line.startswith("#")
    }
    for anchor in sorted(RUNBOOK_ANCHORS - headings):
        report.fail(readme, f"no heading for the runbook anchor {anchor} the alerts link to")
        if (rule.get("labels") or {}).get("severity") not in ("warning", "critical"):
            report.fail(rules_path, f"{name} needs a severity label: warning or critical")
        for metric in re.findall(r"\bordersync_[a-z_]+", str(rule.get("expr", ""))):
            if metric not in EXPORTED_METRICS:
                report.fail(rules_path, f"{name} uses {metric}, which ordersync does not export")
    tests = (parsed.get(tests_path) or [{}])[0] or {}
    tested = {t.get("alertname") for case in tests.get("tests") or [] for t in case.get("alert_rule_test") or [] if t.get("exp_alerts")}
    for rule in alerts:
        if rule["alert"] not in tested:
            report.fail(tests_path, f"no test expects {rule['alert']} to fire")
    if report.failures == failures:
        report.ok("prometheus", f"{len(alerts)} alerts: promtool check rules/config and {len(tests.get('tests') or [])} unit test groups pass; annotations, runbooks, metric names checked")


# --- sources -----------------------------------------------------------------------


def check_sources_agree(report: Report, repo: Path) -> None:
    """The names hard-coded here and in the manifests still match the code."""
    jobs = repo / "src" / "domain" / "job.rs"
    if jobs.is_file():
        text = jobs.read_text()
        for kind in JOB_KINDS:
            if f'"{kind}"' not in text:
                report.fail(jobs, f"no longer names job kind {kind!r}; update JOB_KINDS in deploy/validate.py and the KEDA list names")
    config = repo / "src" / "config.rs"
    if config.is_file() and "token_env" not in config.read_text():
        report.fail(config, "has no [admin] token_env any more; update the example configs")


def main(argv: Iterable[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--promtool", required=True)
    parser.add_argument("--docker", help="docker CLI with a working `docker compose` plugin")
    parser.add_argument("--compose-schema", type=Path, help="the Compose Specification JSON schema (when there is no docker compose)")
    parser.add_argument("--kubectl", help="kubectl, to render the kustomization")
    parser.add_argument("--ordersync", help="a built ordersync binary, to load the example configs")
    args = parser.parse_args(list(argv))

    repo = args.repo.resolve()
    deploy = repo / "deploy"
    report = Report(repo)
    parsed = check_yaml(report, deploy)
    check_sources_agree(report, repo)
    check_kubernetes(report, deploy, parsed, args.kubectl)
    check_compose(report, deploy, parsed, args.docker, args.compose_schema)
    check_dockerfile(report, repo, deploy)
    check_configs(report, repo, deploy, args.ordersync)
    check_prometheus(report, deploy, parsed, args.promtool)
    if report.failures:
        print(f"deploy-check: {report.failures} problem(s) found", flush=True)
        return 1
    print("deploy-check: all deployment files pass", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
