"""k8s/: each overlay rendered by kustomize, every object checked against the Kubernetes API schemas
and the FlinkDeployment against the Flink Kubernetes Operator's CRD, then what the job needs.

No cluster is contacted. The tools and schemas are fetched once into the cache (tests/support/validators.py):
kustomize from the Go module proxy, the Kubernetes JSON schemas from the kubernetes-validate wheel
(PyPI), the CRD from the operator's API jar (Maven Central).
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support import validators
from flink_jobs.settings import AuditJobSettings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
PINS = dict(dep.split("==", 1) for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
FLINK_VERSION = PINS["apache-flink"]
# flinkVersion names major and minor: 2.3.0 -> v2_3.
FLINK_ENUM = "v{}_{}".format(*FLINK_VERSION.split(".")[:2])
MAIN_CONTAINER = "flink-main-container"  # the name Flink's native Kubernetes mode merges templates into


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {overlay: validators.kustomize_build(K8S / "overlays" / overlay) for overlay in OVERLAYS}


def _one(objects: list[dict], kind: str) -> dict:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


def _main_container(pod_template: dict) -> dict:
    (container,) = [c for c in pod_template["spec"]["containers"] if c["name"] == MAIN_CONTAINER]
    return container


def test_each_overlay_renders_the_whole_deployment(rendered):
    for overlay, objects in rendered.items():
        kinds = sorted(o["kind"] for o in objects)
        assert kinds == ["ConfigMap", "FlinkDeployment", "Namespace", "NetworkPolicy", "Role", "RoleBinding",
                         "ServiceAccount"], (overlay, kinds)
        namespace = _one(objects, "Namespace")["metadata"]["name"]
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == namespace, (overlay, obj["kind"])
        assert _one(objects, "RoleBinding")["subjects"][0]["namespace"] == namespace


@pytest.mark.parametrize("version", validators.KUBERNETES_VERSIONS)
def test_every_object_matches_the_kubernetes_api_schema(rendered, version):
    problems = []
    for overlay, objects in rendered.items():
        for obj in objects:
            validator = validators.kubernetes_validator(obj, version)
            if obj["kind"] == "FlinkDeployment":
                assert validator is None  # a custom resource: checked against its CRD below
                continue
            assert validator is not None, f"no Kubernetes {version} schema for {obj['apiVersion']} {obj['kind']}"
            problems += [f"{overlay} {obj['kind']} {'.'.join(map(str, e.path))}: {e.message}"
                         for e in validator.iter_errors(obj)]
    assert not problems, "\n".join(problems)


def test_kubernetes_schema_rejects_a_broken_object(rendered):
    policy = copy.deepcopy(_one(rendered["prod"], "NetworkPolicy"))
    policy["spec"]["podSelecter"] = policy["spec"].pop("podSelector")  # a typo the API server would prune
    policy["spec"]["egress"][1]["ports"][0]["protocol"] = 53
    errors = [e.message for e in validators.kubernetes_validator(policy, validators.KUBERNETES_VERSIONS[-1])
              .iter_errors(policy)]
    assert any("podSelecter" in e for e in errors), errors
    assert any("53" in e for e in errors), errors


@pytest.fixture(scope="module")
def crd_schema() -> dict:
    return validators.flink_deployment_schema(extra_flink_versions=(FLINK_ENUM,))


def test_flink_deployment_matches_the_operator_crd(rendered, crd_schema):
    for overlay, objects in rendered.items():
        deployment = _one(objects, "FlinkDeployment")
        errors = [f"{'.'.join(map(str, e.path))}: {e.message}"
                  for e in jsonschema.Draft7Validator(crd_schema).iter_errors(deployment)]
        assert not errors, (overlay, errors)


def test_operator_crd_rejects_a_broken_flink_deployment(rendered, crd_schema):
    deployment = copy.deepcopy(_one(rendered["prod"], "FlinkDeployment"))
    deployment["spec"]["job"]["upgradeMode"] = "savepoints"
    deployment["spec"]["jobManager"]["replica"] = deployment["spec"]["jobManager"].pop("replicas")
    deployment["spec"]["taskManager"]["podTemplate"]["spec"]["tolerations"][0]["effect"] = ["NoSchedule"]
    errors = {".".join(map(str, e.path)): e.message
              for e in jsonschema.Draft7Validator(crd_schema).iter_errors(deployment)}
    assert "spec.job.upgradeMode" in errors, errors
    assert any("replica" in message for message in errors.values()), errors
    assert "spec.taskManager.podTemplate.spec.tolerations.0.effect" in errors, errors


def test_only_the_flink_version_enum_is_widened_beyond_the_fetched_crd(rendered):
    """The operator API on Maven Central here (1.10) predates Flink 2; everything else validates as it is."""
    deployment = _one(rendered["prod"], "FlinkDeployment")
    errors = [e for e in jsonschema.Draft7Validator(validators.flink_deployment_schema()).iter_errors(deployment)]
    assert [(".".join(map(str, e.path)), e.instance) for e in errors] == [("spec.flinkVersion", FLINK_ENUM)]


def test_flink_deployment_runs_the_images_job_in_application_mode(rendered):
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    for overlay, objects in rendered.items():
        spec = _one(objects, "FlinkDeployment")["spec"]
        assert spec["flinkVersion"] == FLINK_ENUM
        job = spec["job"]
        assert job["jarURI"] == f"local:///opt/flink/opt/flink-python-{FLINK_VERSION}.jar"
        assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        script = job["args"][job["args"].index("-py") + 1]
        # The image copies flink_jobs/ to /opt/llm-audit/flink_jobs/.
        assert (ROOT / Path(script).relative_to("/opt/llm-audit")).is_file(), script
        assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
        conf = spec["flinkConfiguration"]
        assert conf["kubernetes.entry.path"] == "/opt/llm-audit/docker/entrypoint.sh"
        assert "COPY --chmod=755 docker/entrypoint.sh /opt/llm-audit/docker/entrypoint.sh" in dockerfile
        assert conf["high-availability.type"] == "kubernetes"
        for new, old in (("execution.checkpointing.dir", "state.checkpoints.dir"),
                         ("execution.checkpointing.savepoint-dir", "state.savepoints.dir")):
            assert conf[new] == conf[old] and conf[new].startswith("s3://"), (overlay, new)
        assert conf["high-availability.storageDir"].startswith("s3://")
        plugins = {e["name"]: e.get("value") for e in _main_container(spec["podTemplate"])["env"]}
        assert plugins["ENABLE_BUILT_IN_PLUGINS"] == f"flink-s3-fs-presto-{FLINK_VERSION}.jar"
        assert conf["metrics.reporter.influxdb.factory.class"] == \
            "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory"
        assert conf["job.autoscaler.enabled"] == "true"
    assert _one(rendered["dev"], "FlinkDeployment")["spec"]["flinkConfiguration"]["job.autoscaler.scaling.enabled"] \
        == "false"
    assert _one(rendered["prod"], "FlinkDeployment")["spec"]["flinkConfiguration"]["job.autoscaler.scaling.enabled"] \
        == "true"
    assert _one(rendered["dev"], "FlinkDeployment")["spec"]["image"].endswith(":0.1.0-cpu")
    assert _one(rendered["prod"], "FlinkDeployment")["spec"]["image"].endswith(":0.1.0-cuda")


def test_job_settings_are_known_valid_and_consistent(rendered, monkeypatch):
    known = {f"LLM_AUDIT_{name.upper()}" for name in AuditJobSettings.model_fields}
    for overlay, objects in rendered.items():
        deployment = _one(objects, "FlinkDeployment")
        config_map = _one(objects, "ConfigMap")
        container = _main_container(deployment["spec"]["podTemplate"])
        # The generated name, hash suffix included, is what the pods read.
        assert container["envFrom"][0]["configMapRef"]["name"] == config_map["metadata"]["name"]
        env = {e["name"]: e for e in container["env"]}
        names = set(config_map["data"]) | {n for n in env if n.startswith("LLM_AUDIT_")}
        assert names <= known, (overlay, names - known)
        for var in [v for v in __import__("os").environ if v.startswith("LLM_AUDIT_")]:
            monkeypatch.delenv(var)
        for name, value in config_map["data"].items():
            monkeypatch.setenv(name, value)
        for name, entry in env.items():  # Secret-backed: any value stands in
            if name.startswith("LLM_AUDIT_") and not entry["valueFrom"]["secretKeyRef"].get("optional"):
                monkeypatch.setenv(name, "placeholder")
        settings = load_settings()
        assert settings.parallelism == deployment["spec"]["job"]["parallelism"], overlay


SENSITIVE = re.compile(r"password|secret|token|access-key|credential", re.I)


def _manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.is_file())


def test_no_secret_value_is_committed_or_rendered(rendered):
    for path in _manifest_files():
        for doc in yaml.safe_load_all(path.read_text()) if path.suffix in (".yaml", ".yml") else []:
            if not isinstance(doc, dict):
                continue
            assert not (doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData"))), path
            assert "secretGenerator" not in doc, f"{path}: secrets are created out of band, not generated"
        if path.suffix == ".env":
            assert not any(SENSITIVE.search(line.split("=")[0]) for line in path.read_text().splitlines()), path
    for overlay, objects in rendered.items():
        assert not [o for o in objects if o["kind"] == "Secret"], overlay
        assert not [k for k in _one(objects, "ConfigMap")["data"] if SENSITIVE.search(k)], overlay
        spec = _one(objects, "FlinkDeployment")["spec"]
        env = {e["name"]: e for e in _main_container(spec["podTemplate"])["env"]}
        for key, value in spec["flinkConfiguration"].items():
            if SENSITIVE.search(key.rsplit(".", 1)[-1]):
                # Sensitive Flink options are placeholders, resolved from Secret-backed env vars.
                match = re.fullmatch(r"\$\{(FLINK_SECRET_[A-Z0-9_]+)\}", value)
                assert match, f"{overlay}: {key} must be a ${{FLINK_SECRET_*}} placeholder, not a value"
                assert "secretKeyRef" in env[match.group(1)]["valueFrom"], key
        for name, entry in env.items():
            if SENSITIVE.search(name):
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{overlay}: {name} is set in plain text"


def test_role_pod_templates_only_add_to_the_shared_one(rendered):
    """The operator merges lists by position: a role template with env would overwrite shared entries."""
    for overlay, objects in rendered.items():
        spec = _one(objects, "FlinkDeployment")["spec"]
        shared = _main_container(spec["podTemplate"])
        assert spec["podTemplate"]["spec"]["containers"].index(shared) == 0
        assert spec["podTemplate"]["spec"]["securityContext"]["runAsNonRoot"] is True
        for role in ("jobManager", "taskManager"):
            template = spec[role].get("podTemplate")
            if template:
                containers = template["spec"]["containers"]
                assert containers[0]["name"] == MAIN_CONTAINER and len(containers) == 1, (overlay, role)
                assert "env" not in containers[0] and "envFrom" not in containers[0], (overlay, role)


def test_gpu_taskmanagers_in_prod_only(rendered):
    prod = _one(rendered["prod"], "FlinkDeployment")["spec"]["taskManager"]["podTemplate"]["spec"]
    assert _main_container({"spec": prod})["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert prod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in prod["tolerations"]
    assert "podTemplate" not in _one(rendered["dev"], "FlinkDeployment")["spec"]["taskManager"]
    assert _one(rendered["prod"], "FlinkDeployment")["spec"]["jobManager"]["replicas"] == 2  # standby, via HA


def _ports(rule: dict) -> set[tuple[str, int]]:
    return {(p["protocol"], p["port"]) for p in rule.get("ports", [])}


def test_network_policy_confines_the_job_pods(rendered):
    for overlay, objects in rendered.items():
        policy = _one(objects, "NetworkPolicy")["spec"]
        labels = _one(objects, "FlinkDeployment")["spec"]["podTemplate"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items(), "the policy must select the job's pods"
        assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
        same_app = {"podSelector": policy["podSelector"]}
        for rule in policy["egress"]:
            # Only the job's own pods are reachable on any port; everything else names its ports.
            assert rule.get("ports") or rule["to"] == [same_app], (overlay, rule)
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    assert _ports(rule) <= {("TCP", 443), ("TCP", 6443)}, (overlay, rule)
        egress = set().union(*(_ports(rule) for rule in policy["egress"]))
        for needed in (("UDP", 53), ("TCP", 9092), ("TCP", 27017), ("TCP", 8086), ("TCP", 443)):
            assert needed in egress, (overlay, needed)
        rest = [rule for rule in policy["ingress"] if rule.get("ports")]
        assert [_ports(rule) for rule in rest] == [{("TCP", 8081)}]
    dev_egress = _one(rendered["dev"], "NetworkPolicy")["spec"]["egress"]
    assert any(("TCP", 9000) in _ports(rule) for rule in dev_egress), "dev checkpoints go to MinIO on 9000"


def test_flink_metrics_go_to_the_bucket_the_dashboards_read(rendered):
    for overlay, objects in rendered.items():
        conf = _one(objects, "FlinkDeployment")["spec"]["flinkConfiguration"]
        assert conf["metrics.reporter.influxdb.db"] == _one(objects, "ConfigMap")["data"]["LLM_AUDIT_INFLUX_BUCKET"]
        validators.assert_reporter_is_flink_jobs(conf)
