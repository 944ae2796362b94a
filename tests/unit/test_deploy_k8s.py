"""k8s/: each overlay rendered by kustomize, every object checked against the Kubernetes API schemas
and the FlinkDeployment against the Flink Kubernetes Operator's CRD, then what the job needs, the
CronJobs' llm-audit commands against the CLI itself, and the review console's Deployment, Service,
Ingress and NetworkPolicy against the console's settings and app.

No cluster is contacted. The tools and schemas are fetched once into the cache (tests/support/validators.py):
kustomize from the Go module proxy, the Kubernetes JSON schemas from the kubernetes-validate wheel
(PyPI), the CRD from the operator's API jar (Maven Central).
"""

from __future__ import annotations

import copy
import json
import os
import re
import tomllib
from pathlib import Path
from unittest.mock import MagicMock

import jsonschema
import pytest
import yaml
from pydantic import SecretStr
from starlette.testclient import TestClient
from typer.main import get_command
from typer.testing import CliRunner

from console.app import create_app
from console.settings import ConsoleSettings
from tests.support import validators
from flink_jobs.cli import app as cli
from flink_jobs.settings import AuditJobSettings, SettingsError, load_settings
from tests.support.pushes import assert_unsigned_empty_push_is_refused
from udfs.signing import generate_key

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


def _named(objects: list[dict], kind: str, name: str) -> dict:
    (obj,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def _main_container(pod_template: dict) -> dict:
    (container,) = [c for c in pod_template["spec"]["containers"] if c["name"] == MAIN_CONTAINER]
    return container


CRON_JOBS = ("llm-audit-archive-retention", "llm-audit-erasure-finish", "llm-audit-compliance-report")


def _cron_pod(objects: list[dict], name: str) -> dict:
    return _named(objects, "CronJob", name)["spec"]["jobTemplate"]["spec"]["template"]


def _cron_container(objects: list[dict], name: str) -> dict:
    (container,) = _cron_pod(objects, name)["spec"]["containers"]
    return container


CONSOLE = "llm-audit-console"  # the review console's Deployment, Service, Ingress and NetworkPolicy


def _console_pod(objects: list[dict]) -> dict:
    return _named(objects, "Deployment", CONSOLE)["spec"]["template"]


def _console_container(objects: list[dict]) -> dict:
    (container,) = _console_pod(objects)["spec"]["containers"]
    return container


def _containers(objects: list[dict]) -> list[tuple[str, dict]]:
    """(what, container) of every pod template rendered: the FlinkDeployment's shared one, the CronJobs' and
    the console's."""
    found = [("FlinkDeployment", _main_container(_one(objects, "FlinkDeployment")["spec"]["podTemplate"]))]
    found += [(f"CronJob {name}", _cron_container(objects, name)) for name in CRON_JOBS]
    return found + [(f"Deployment {CONSOLE}", _console_container(objects))]


def test_each_overlay_renders_the_whole_deployment(rendered):
    for overlay, objects in rendered.items():
        kinds = sorted(o["kind"] for o in objects)
        # A disruption budget only where the console has replicas to spare.
        expected = ["ConfigMap", "CronJob", "CronJob", "CronJob", "Deployment", "FlinkDeployment", "Ingress", "Namespace",
                    "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "Role", "RoleBinding", "Service",
                    "ServiceAccount"]
        assert kinds == sorted(expected + (["PodDisruptionBudget"] if overlay == "prod" else [])), (overlay, kinds)
        assert sorted(o["metadata"]["name"] for o in objects if o["kind"] == "CronJob") == sorted(CRON_JOBS)
        for kind in ("Deployment", "Service", "Ingress"):
            assert _one(objects, kind)["metadata"]["name"] == CONSOLE, (overlay, kind)
        namespace = _one(objects, "Namespace")["metadata"]["name"]
        for obj in objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == namespace, (overlay, obj["kind"])
        assert _one(objects, "RoleBinding")["subjects"][0]["namespace"] == namespace


@pytest.mark.parametrize("version", validators.KUBERNETES_VERSIONS)
def test_every_object_matches_the_kubernetes_api_schema(rendered, version):
    problems, validated = [], set()
    for overlay, objects in rendered.items():
        for obj in objects:
            validator = validators.kubernetes_validator(obj, version)
            if obj["kind"] == "FlinkDeployment":
                assert validator is None  # a custom resource: checked against its CRD below
                continue
            assert validator is not None, f"no Kubernetes {version} schema for {obj['apiVersion']} {obj['kind']}"
            validated.add(obj["kind"])
            problems += [f"{overlay} {obj['kind']} {'.'.join(map(str, e.path))}: {e.message}"
                         for e in validator.iter_errors(obj)]
    assert not problems, "\n".join(problems)
    assert {"CronJob", "NetworkPolicy", "ConfigMap", "Role", "Deployment", "Service", "Ingress",
            "PodDisruptionBudget"} <= validated, validated


def test_kubernetes_schema_rejects_a_broken_object(rendered):
    version = validators.KUBERNETES_VERSIONS[-1]
    policy = copy.deepcopy(_named(rendered["prod"], "NetworkPolicy", "llm-audit-job"))
    policy["spec"]["podSelecter"] = policy["spec"].pop("podSelector")  # a typo the API server would prune
    policy["spec"]["egress"][1]["ports"][0]["protocol"] = 53
    errors = [e.message for e in validators.kubernetes_validator(policy, version).iter_errors(policy)]
    assert any("podSelecter" in e for e in errors), errors
    assert any("53" in e for e in errors), errors
    # The strict schema reaches into a CronJob's pod template too.
    cron_job = copy.deepcopy(_named(rendered["prod"], "CronJob", CRON_JOBS[0]))
    (container,) = cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    container["comand"] = container.pop("command")
    cron_job["spec"]["startingDeadlineSeconds"] = "1h"
    errors = [e.message for e in validators.kubernetes_validator(cron_job, version).iter_errors(cron_job)]
    assert any("comand" in e for e in errors), errors
    assert any("1h" in e for e in errors), errors
    # And into the console's Deployment, its probes included, and its Ingress's backend.
    deployment = copy.deepcopy(_named(rendered["prod"], "Deployment", CONSOLE))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["readinessProbe"]["httpGet"]["pth"] = container["readinessProbe"]["httpGet"].pop("path")
    deployment["spec"]["replicas"] = "two"
    errors = [e.message for e in validators.kubernetes_validator(deployment, version).iter_errors(deployment)]
    assert any("pth" in e for e in errors), errors
    assert any("two" in e for e in errors), errors
    ingress = copy.deepcopy(_named(rendered["prod"], "Ingress", CONSOLE))
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {"number": "80"}
    ingress["spec"]["tls"][0]["secret"] = ingress["spec"]["tls"][0].pop("secretName")
    errors = [e.message for e in validators.kubernetes_validator(ingress, version).iter_errors(ingress)]
    assert any("'80'" in e for e in errors), errors
    assert any("secret" in e for e in errors), errors


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
        # Both S3 plugins register s3://: state names presto's own scheme, the archive hadoop's (its
        # recoverable writer, which the archive's FileSink needs); none may say s3:// and leave it to chance.
        for new, old in (("execution.checkpointing.dir", "state.checkpoints.dir"),
                         ("execution.checkpointing.savepoint-dir", "state.savepoints.dir")):
            assert conf[new] == conf[old] and conf[new].startswith("s3p://"), (overlay, new)
        assert conf["high-availability.storageDir"].startswith("s3p://")
        assert _one(objects, "ConfigMap")["data"]["LLM_AUDIT_ARCHIVE_DIR"].startswith("s3a://"), overlay
        assert not [key for key, value in conf.items() if str(value).startswith("s3://")], overlay
        plugins = {e["name"]: e.get("value") for e in _main_container(spec["podTemplate"])["env"]}
        assert plugins["ENABLE_BUILT_IN_PLUGINS"].split(";") == [f"flink-s3-fs-presto-{FLINK_VERSION}.jar",
                                                                 f"flink-s3-fs-hadoop-{FLINK_VERSION}.jar"]
        for plugin in plugins["ENABLE_BUILT_IN_PLUGINS"].split(";"):  # the image checks they are in opt/
            assert f'test -f "/opt/flink/opt/{plugin.replace(FLINK_VERSION, "${FLINK_VERSION}")}"' in dockerfile
        assert conf["metrics.reporter.influxdb.factory.class"] == \
            "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory"
        assert conf["job.autoscaler.enabled"] == "true"
    assert _one(rendered["dev"], "FlinkDeployment")["spec"]["flinkConfiguration"]["job.autoscaler.scaling.enabled"] \
        == "false"
    assert _one(rendered["prod"], "FlinkDeployment")["spec"]["flinkConfiguration"]["job.autoscaler.scaling.enabled"] \
        == "true"
    assert _one(rendered["dev"], "FlinkDeployment")["spec"]["image"].endswith(":0.1.0-cpu")
    assert _one(rendered["prod"], "FlinkDeployment")["spec"]["image"].endswith(":0.1.0-cuda")


KNOWN_SETTINGS = {f"LLM_AUDIT_{name.upper()}" for name in AuditJobSettings.model_fields}


def _settings_env(objects: list[dict], container: dict) -> dict[str, str]:
    """The LLM_AUDIT_* environment a container gets: its ConfigMap's data, and a stand-in for each
    Secret-backed variable that is not optional (an optional key is absent from the Secret by default)."""
    config_map = _one(objects, "ConfigMap")
    # The generated name, hash suffix included, is what the pods read.
    assert container["envFrom"][0]["configMapRef"]["name"] == config_map["metadata"]["name"]
    env = {e["name"]: e for e in container["env"]}
    names = set(config_map["data"]) | {n for n in env if n.startswith("LLM_AUDIT_")}
    assert names <= KNOWN_SETTINGS, names - KNOWN_SETTINGS
    values = dict(config_map["data"])
    for name, entry in env.items():
        if name.startswith("LLM_AUDIT_"):
            assert "secretKeyRef" in entry["valueFrom"], f"{name}: settings not in the ConfigMap come from a Secret"
            if not entry["valueFrom"]["secretKeyRef"].get("optional"):
                values[name] = json.dumps([TRUSTED_KEY]) if name == "LLM_AUDIT_RULES_TRUSTED_KEYS" else "placeholder"
    return values


def _load(monkeypatch, values: dict[str, str]):
    for var in [v for v in os.environ if v.startswith("LLM_AUDIT_")]:
        monkeypatch.delenv(var)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_settings()


TRUSTED_KEY = generate_key()[1]  # a stand-in for the Secret's rules-trusted-keys


def test_job_runs_signed_pushes_only(rendered, monkeypatch):
    # Hole 3 of issue 30: with no key set, `{"rules": []}` pushed unsigned turned the audit off, silently.
    for overlay, objects in rendered.items():
        container = _main_container(_one(objects, "FlinkDeployment")["spec"]["podTemplate"])
        env = _settings_env(objects, container)
        assert "LLM_AUDIT_RULES_ALLOW_UNSIGNED" not in env, overlay
        settings = _load(monkeypatch, env)
        assert settings.rules_trusted_keys == [TRUSTED_KEY] and not settings.rules_allow_unsigned, overlay
        assert_unsigned_empty_push_is_refused(settings)
        with pytest.raises(SettingsError, match="rule pushes must be signed, and no key is trusted"):
            _load(monkeypatch, {k: v for k, v in env.items() if k != "LLM_AUDIT_RULES_TRUSTED_KEYS"})


def test_job_settings_are_known_valid_and_consistent(rendered, monkeypatch):
    for overlay, objects in rendered.items():
        deployment = _one(objects, "FlinkDeployment")
        settings = _load(monkeypatch, _settings_env(objects, _main_container(deployment["spec"]["podTemplate"])))
        assert settings.parallelism == deployment["spec"]["job"]["parallelism"], overlay
        assert settings.archive_dir and "archive" in settings.outputs, overlay
    assert _one(rendered["dev"], "ConfigMap")["data"]["LLM_AUDIT_ARCHIVE_DIR"] == "s3a://llm-audit-dev/archive"
    assert _one(rendered["prod"], "ConfigMap")["data"]["LLM_AUDIT_ARCHIVE_DIR"] == "s3a://llm-audit-archive/events"


SENSITIVE = re.compile(r"password|secret|token|access[-_]key|credential|[-_]key$", re.I)


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
        literals = list(_one(objects, "ConfigMap")["data"].values())
        for what, container in _containers(objects):
            for entry in container.get("env", []):
                if SENSITIVE.search(entry["name"]):
                    assert "secretKeyRef" in entry.get("valueFrom", {}), \
                        f"{overlay} {what}: {entry['name']} is set in plain text"
                literals += [entry["value"]] if "value" in entry else []
        # Nor a credential inside a URL under a harmless name (mongodb://user:password@..., s3://key:secret@...).
        assert not [v for v in literals if re.search(r"://[^/@\s]+:[^/@\s]*@", v)], overlay
        # The CronJobs' and the console's secrets were among those checked.
        cron_env = {e["name"] for name in CRON_JOBS for e in _cron_container(objects, name)["env"]}
        assert {"LLM_AUDIT_ARCHIVE_KEY", "AWS_SECRET_ACCESS_KEY", "LLM_AUDIT_MONGO_URI"} <= cron_env, overlay
        console_env = {e["name"] for e in _console_container(objects)["env"]}
        assert {"LLM_AUDIT_MONGO_URI", "LLM_AUDIT_INFLUX_TOKEN", "LLM_AUDIT_CONSOLE_SESSION_SECRET",
                "LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET"} <= console_env, overlay
        # Every secret the console's settings hold (SecretStr) comes from a Secret, whatever its name says.
        secret_fields = {f"LLM_AUDIT_{name.upper()}" for name, field in ConsoleSettings.model_fields.items()
                         if SecretStr in (field.annotation, *getattr(field.annotation, "__args__", ()))}
        assert {"LLM_AUDIT_CONSOLE_SESSION_SECRET", "LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET"} <= secret_fields
        for entry in _console_container(objects)["env"]:
            if entry["name"] in secret_fields | {"LLM_AUDIT_INFLUX_TOKEN"}:
                assert set(entry) == {"name", "valueFrom"} and "secretKeyRef" in entry["valueFrom"], (overlay, entry)


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
        policy = _named(objects, "NetworkPolicy", "llm-audit-job")["spec"]
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
    dev_egress = _named(rendered["dev"], "NetworkPolicy", "llm-audit-job")["spec"]["egress"]
    assert any(("TCP", 9000) in _ports(rule) for rule in dev_egress), "dev checkpoints go to MinIO on 9000"


def _selects(policy: dict, labels: dict) -> bool:
    return policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_network_policy_confines_the_cron_job_pods(rendered):
    for overlay, objects in rendered.items():
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        job_labels = _one(objects, "FlinkDeployment")["spec"]["podTemplate"]["metadata"]["labels"]
        for name in CRON_JOBS:
            labels = _cron_pod(objects, name)["metadata"]["labels"]
            # Exactly one policy, not the job's: the job's pods accept any port from their own kind.
            (policy,) = [p for p in policies if _selects(p, labels)]
            assert policy["metadata"]["name"] == "llm-audit-batch" and not _selects(policy, job_labels), overlay
            spec = policy["spec"]
            assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"] and not spec.get("ingress"), overlay
            for rule in spec["egress"]:
                assert rule.get("ports"), (overlay, rule)
                if any("ipBlock" in peer for peer in rule["to"]):
                    assert _ports(rule) == {("TCP", 443)}, (overlay, rule)  # S3; no Kubernetes API
            egress = set().union(*(_ports(rule) for rule in spec["egress"]))
            # DNS, MongoDB and InfluxDB (the report's findings and dead letters), S3.
            for needed in (("UDP", 53), ("TCP", 27017), ("TCP", 8086), ("TCP", 443)):
                assert needed in egress, (overlay, needed)
            assert ("TCP", 9092) not in egress, "they do not use Kafka"
            assert _cron_pod(objects, name)["spec"]["automountServiceAccountToken"] is False
    dev_egress = _named(rendered["dev"], "NetworkPolicy", "llm-audit-batch")["spec"]["egress"]
    assert any(("TCP", 9000) in _ports(rule) for rule in dev_egress), "dev's archive is on MinIO on 9000"


def test_flink_metrics_go_to_the_bucket_the_dashboards_read(rendered):
    for overlay, objects in rendered.items():
        conf = _one(objects, "FlinkDeployment")["spec"]["flinkConfiguration"]
        assert conf["metrics.reporter.influxdb.db"] == _one(objects, "ConfigMap")["data"]["LLM_AUDIT_INFLUX_BUCKET"]
        validators.assert_reporter_is_flink_jobs(conf)


# --- the CronJobs: scheduled llm-audit commands in the job's image ------------------------------

def _image_llm_audit() -> str:
    """Where the image has the llm-audit console script: the venv the Dockerfile installs the project into."""
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    (venv,) = set(re.findall(r"VIRTUAL_ENV=(\S+)", dockerfile))
    assert "uv pip install --no-deps ." in dockerfile
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["llm-audit"] == "flink_jobs.cli:app"
    return f"{venv}/bin/llm-audit"


def _cli_parse(args: list[str]) -> tuple[list[str], dict]:
    """(the words naming the command, its options) of args, parsed and converted by the CLI's own command as
    a run would (unknown options, types, required ones and bounds are errors), without running it."""
    command, rest, path = get_command(cli), list(args), []
    while hasattr(command, "commands"):  # a group: the next word names its subcommand
        path.append(rest.pop(0))
        assert path[-1] in command.commands, f"llm-audit has no command {' '.join(path)!r}"
        command = command.commands[path[-1]]
    return path, command.make_context(" ".join(path), rest).params


def _option(args: list[str], option: str) -> str:
    return args[args.index(option) + 1]


def test_cron_jobs_run_the_images_llm_audit_with_valid_commands(rendered, monkeypatch):
    from flink_jobs.offline.erasure import retention_cutoff

    llm_audit = _image_llm_audit()
    calls = []  # a stand-in for the deletion: what the retention command asked to drop
    monkeypatch.setattr("flink_jobs.offline.erasure.drop_partitions_before", lambda *a: calls.append(a) or [])
    for overlay, objects in rendered.items():
        image = _one(objects, "FlinkDeployment")["spec"]["image"]
        archive = _one(objects, "ConfigMap")["data"]["LLM_AUDIT_ARCHIVE_DIR"]
        for name in CRON_JOBS:
            container = _cron_container(objects, name)
            assert container["image"] == image, (overlay, name)  # the overlay's image, rewritten alike
            # The image's ENTRYPOINT starts Flink (docker/entrypoint.sh); `command:` replaces it.
            assert container["command"] == [llm_audit], (overlay, name)
            path, _ = _cli_parse(container["args"])
            help_ = CliRunner().invoke(cli, [*path, "--help"])
            assert help_.exit_code == 0, (overlay, name, help_.output)

        # Retention: parsed strictly, then run with the pod's settings against the stand-in.
        args = _cron_container(objects, "llm-audit-archive-retention")["args"]
        path, params = _cli_parse(args)
        assert path == ["archive", "retention"] and not params["dry_run"], args
        days = params["days"]
        assert days >= 365, "the archive is the audit record: at least a year"
        _load(monkeypatch, _settings_env(objects, _cron_container(objects, "llm-audit-archive-retention")))
        calls.clear()
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (overlay, result.output)
        assert calls == [(archive, retention_cutoff(days), False)], overlay

        # Erasure: every erasure's final sweep, once settled.
        path, params = _cli_parse(_cron_container(objects, "llm-audit-erasure-finish")["args"])
        assert path == ["erase"] and params["finish"], overlay

        # Report: every tenant, the previous month, into a directory (the command dates the file name)
        # in the archive's bucket but outside the archive's partitions.
        args = _cron_container(objects, "llm-audit-compliance-report")["args"]
        assert args[0] == "report" and "--all-tenants" in args and "--tenant" not in args, overlay
        assert "--last-month" in args and "--from" not in args and "--to" not in args, overlay
        out = _option(args, "--out")
        assert out.startswith("s3://") and out.endswith("/"), out
        bucket, path = out.removeprefix("s3://").split("/", 1)
        archive_bucket, archive_path = archive.split("://", 1)[1].split("/", 1)
        assert bucket == archive_bucket and not path.startswith(archive_path), (overlay, out, archive)
    assert _option(_cron_container(rendered["dev"], "llm-audit-compliance-report")["args"], "--out") \
        == "s3://llm-audit-dev/reports/"


def test_cron_jobs_share_the_jobs_settings_secrets_and_hardening(rendered, monkeypatch):
    for overlay, objects in rendered.items():
        spec = _one(objects, "FlinkDeployment")["spec"]
        main = _main_container(spec["podTemplate"])
        job_env = {e["name"]: e for e in main["env"]}
        for name in CRON_JOBS:
            pod, container = _cron_pod(objects, name)["spec"], _cron_container(objects, name)
            # Non-root, like the job's pods (the namespace warns on anything short of "restricted").
            assert pod["securityContext"] == spec["podTemplate"]["spec"]["securityContext"], (overlay, name)
            assert container["securityContext"] == main["securityContext"], (overlay, name)
            assert pod["restartPolicy"] == "Never"
            env = {e["name"]: e for e in container["env"]}
            assert {n for n in env if not n.startswith("LLM_AUDIT_")} <= \
                {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL", "AWS_REGION"}, (overlay, name)
            # load_settings() validates every setting together (an encrypted archive needs its key, SASL its
            # password), so the CronJobs get the job's Secret-backed settings, from the same keys.
            assert {n: e for n, e in env.items() if n.startswith("LLM_AUDIT_")} == \
                {n: e for n, e in job_env.items() if n.startswith("LLM_AUDIT_")}, (overlay, name)
            settings = _load(monkeypatch, _settings_env(objects, container))
            assert settings.archive_dir == _one(objects, "ConfigMap")["data"]["LLM_AUDIT_ARCHIVE_DIR"]
            # pyarrow reads AWS_*: the credentials and endpoint of the job's S3 (Flink's s3.* options).
            assert env["AWS_ACCESS_KEY_ID"]["valueFrom"] == job_env["FLINK_SECRET_S3_ACCESS_KEY"]["valueFrom"]
            assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == job_env["FLINK_SECRET_S3_SECRET_KEY"]["valueFrom"]
            assert env.get("AWS_ENDPOINT_URL", {}).get("value") == spec["flinkConfiguration"].get("s3.endpoint")
    assert "AWS_ENDPOINT_URL" in {e["name"] for e in _cron_container(rendered["dev"], CRON_JOBS[0])["env"]}


def test_cron_job_schedules(rendered):
    for overlay, objects in rendered.items():
        retention = _named(objects, "CronJob", "llm-audit-archive-retention")["spec"]
        report = _named(objects, "CronJob", "llm-audit-compliance-report")["spec"]
        finish = _named(objects, "CronJob", "llm-audit-erasure-finish")["spec"]
        for spec in (retention, report, finish):
            assert spec["timeZone"] == "Etc/UTC", overlay  # the archive's partitions are UTC dates
            assert spec["concurrencyPolicy"] == "Forbid", overlay  # a late run never overlaps the next
        minute, hour, *days = retention["schedule"].split()
        assert minute.isdigit() and hour.isdigit() and days == ["*", "*", "*"], retention["schedule"]  # daily
        minute, *rest = finish["schedule"].split()
        assert minute.isdigit() and rest == ["*"] * 4, finish["schedule"]  # hourly: an erasure settles in minutes
        minute, hour, *days = report["schedule"].split()
        assert minute.isdigit() and hour.isdigit() and days == ["1", "*", "*"], report["schedule"]  # the 1st
        # The archive is kept as long as the violations found in it.
        ttl = _one(objects, "ConfigMap")["data"].get("LLM_AUDIT_VIOLATIONS_TTL_DAYS")
        if ttl:
            assert _option(_cron_container(objects, CRON_JOBS[0])["args"], "--days") == ttl, overlay


# --- the review console: `llm-audit console serve` in the job's image, behind a TLS Ingress ----------

CONSOLE_SETTINGS = {f"LLM_AUDIT_{name.upper()}" for name in ConsoleSettings.model_fields}
# The console's InfluxDB settings, under the job's names.
INFLUX_SETTINGS = {"LLM_AUDIT_INFLUX_URL", "LLM_AUDIT_INFLUX_TOKEN", "LLM_AUDIT_INFLUX_ORG", "LLM_AUDIT_INFLUX_BUCKET"}
CONSOLE_HOSTS = {"dev": "audit-console.dev.example.com", "prod": "audit-console.example.com"}


def _console_settings(objects: list[dict], monkeypatch) -> ConsoleSettings:
    """ConsoleSettings as a console pod loads them: the job's ConfigMap (names not the console's are ignored), its
    literal env, and a stand-in for each Secret-backed variable."""
    container = _console_container(objects)
    config_map = _one(objects, "ConfigMap")
    assert container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]
    # The job's ConfigMap holds settings that are not the console's: harmless only while extras are ignored.
    assert ConsoleSettings.model_config["extra"] == "ignore"
    values = dict(config_map["data"])
    for entry in container["env"]:
        if "valueFrom" in entry:
            assert set(entry["valueFrom"]) == {"secretKeyRef"}, entry
            if not entry["valueFrom"]["secretKeyRef"].get("optional"):
                values[entry["name"]] = "placeholder"
        else:
            values[entry["name"]] = entry["value"]
    for var in [v for v in os.environ if v.startswith("LLM_AUDIT_")]:
        monkeypatch.delenv(var)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return ConsoleSettings()


def _http_port(container: dict) -> dict:
    (port,) = [p for p in container["ports"] if p["name"] == "http"]
    return port


def _ingress_host(objects: list[dict]) -> str:
    (rule,) = _named(objects, "Ingress", CONSOLE)["spec"]["rules"]
    return rule["host"]


def test_console_runs_the_images_llm_audit_console_serve(rendered):
    llm_audit = _image_llm_audit()
    for overlay, objects in rendered.items():
        container = _console_container(objects)
        # The overlay's image, rewritten like the FlinkDeployment's; `command:` replaces its Flink entrypoint.
        assert container["image"] == _one(objects, "FlinkDeployment")["spec"]["image"], overlay
        assert container["command"] == [llm_audit], overlay
        path, params = _cli_parse(container["args"])
        assert path == ["console", "serve"], container["args"]
        # No --host/--port: the address comes from the settings, which the test below checks.
        assert params == {"host": None, "port": None}, params
        help_ = CliRunner().invoke(cli, [*path, "--help"])
        assert help_.exit_code == 0, (overlay, help_.output)
        # The console reads the package the image installs from console/ (docker/Dockerfile).
        assert "COPY console/ console/" in (ROOT / "docker" / "Dockerfile").read_text()
    assert _named(rendered["dev"], "Deployment", CONSOLE)["spec"]["replicas"] == 1
    assert _named(rendered["prod"], "Deployment", CONSOLE)["spec"]["replicas"] == 2


def test_console_settings_are_known_valid_and_consistent(rendered, monkeypatch):
    job_secrets = {e["name"]: e["valueFrom"] for e in _cron_container(rendered["prod"], CRON_JOBS[0])["env"]}
    for overlay, objects in rendered.items():
        container = _console_container(objects)
        env = {e["name"]: e for e in container["env"]}
        named = {n for n in env if n.startswith("LLM_AUDIT_")}
        assert named <= CONSOLE_SETTINGS | INFLUX_SETTINGS, named - CONSOLE_SETTINGS - INFLUX_SETTINGS
        # Besides settings, only uvicorn's: whose X-Forwarded-* headers to trust (the ingress controller's).
        assert set(env) - named == {"FORWARDED_ALLOW_IPS"}, overlay
        # The job's MongoDB and InfluxDB credentials, from the job's Secret and keys; the console's own Secret.
        for name in ("LLM_AUDIT_MONGO_URI", "LLM_AUDIT_INFLUX_TOKEN"):
            assert env[name]["valueFrom"] == job_secrets[name], (overlay, name)
        assert env["LLM_AUDIT_CONSOLE_SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == \
            {"name": "llm-audit-console", "key": "session-secret"}
        assert env["LLM_AUDIT_CONSOLE_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"] == \
            {"name": "llm-audit-console", "key": "oidc-client-secret"}

        settings = _console_settings(objects, monkeypatch)
        assert settings.console_host == "0.0.0.0", "the default, 127.0.0.1, takes no traffic from outside the pod"
        assert settings.console_port == _http_port(container)["containerPort"], overlay
        # Several replicas must sign cookies with one key: a required Secret, never a per-process random one.
        assert settings.console_session_secret is not None, overlay
        # The job's database and collections.
        job = _load(monkeypatch, _settings_env(objects, _main_container(
            _one(objects, "FlinkDeployment")["spec"]["podTemplate"])))
        assert (settings.mongo_database, settings.violations_collection, settings.anomalies_collection) == \
            (job.mongo_database, job.violations_collection, job.anomalies_collection), overlay
        # Review verdict totals go where the job's metrics go, which the Grafana dashboards read.
        for name in INFLUX_SETTINGS - {"LLM_AUDIT_INFLUX_TOKEN"}:
            assert name in _one(objects, "ConfigMap")["data"], (overlay, name)
        assert (settings.influx_url, settings.influx_org, settings.influx_bucket) == \
            (job.influx_url, job.influx_org, job.influx_bucket), overlay
        # Single sign-on: the issuer over TLS, and OIDC's redirect URI on the Ingress's host.
        assert settings.console_oidc_issuer.startswith("https://"), overlay
        assert settings.console_public_url == f"https://{_ingress_host(objects)}", overlay
        # The app itself accepts them (it refuses an issuer without client id, secret and public URL); the
        # MongoDB client is a stand-in, so nothing is contacted.
        create_app(settings, MagicMock())
    dev = _console_settings(rendered["dev"], monkeypatch)
    prod = _console_settings(rendered["prod"], monkeypatch)
    assert dev.console_oidc_client_id != prod.console_oidc_client_id


def test_console_pods_have_the_cron_jobs_hardening_and_a_read_only_root(rendered):
    for overlay, objects in rendered.items():
        pod, container = _console_pod(objects)["spec"], _console_container(objects)
        cron_pod, cron_container = _cron_pod(objects, CRON_JOBS[0])["spec"], _cron_container(objects, CRON_JOBS[0])
        assert pod["securityContext"] == cron_pod["securityContext"], overlay
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 9999
        assert pod["automountServiceAccountToken"] is False, overlay
        # The CronJobs' container settings, and a read-only root: the console writes nothing but temporary files.
        assert container["securityContext"] == {**cron_container["securityContext"], "readOnlyRootFilesystem": True}
        (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
        assert "emptyDir" in volume, overlay
        assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"], overlay


def test_console_probes_ask_healthz_which_answers_while_mongodb_does(rendered):
    for overlay, objects in rendered.items():
        container = _console_container(objects)
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/healthz" and get["port"] in ("http", 8099), (overlay, probe, get)
            assert get.get("scheme", "HTTP") == "HTTP", "TLS ends at the Ingress"
        readiness, liveness = container["readinessProbe"], container["livenessProbe"]
        # A MongoDB outage takes replicas out of the Service long before it restarts them.
        assert liveness["periodSeconds"] * liveness["failureThreshold"] > \
            readiness["periodSeconds"] * readiness["failureThreshold"], overlay
    # What the probes get: 200 "ok" while MongoDB answers its ping, an error while it does not.
    client = MagicMock()
    http = TestClient(create_app(ConsoleSettings(), client), raise_server_exceptions=False)
    response = http.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    client.admin.command.side_effect = ConnectionError("no MongoDB")
    assert http.get("/healthz").status_code >= 500


def test_console_service_and_ingress_route_its_host_over_tls(rendered):
    for overlay, objects in rendered.items():
        pod = _console_pod(objects)
        service = _named(objects, "Service", CONSOLE)["spec"]
        assert service.get("type", "ClusterIP") == "ClusterIP", overlay
        # The console's pods only: not the job's, nor the CronJobs'.
        assert service["selector"].items() <= pod["metadata"]["labels"].items(), overlay
        assert not service["selector"].items() <= \
            _one(objects, "FlinkDeployment")["spec"]["podTemplate"]["metadata"]["labels"].items()
        assert not service["selector"].items() <= _cron_pod(objects, CRON_JOBS[0])["metadata"]["labels"].items()
        (port,) = service["ports"]
        # Port 80 to the container port by its name, so the number lives in one place.
        assert port["port"] == 80 and port["targetPort"] == "http" == _http_port(_console_container(objects))["name"]
        assert _named(objects, "Deployment", CONSOLE)["spec"]["selector"]["matchLabels"] == service["selector"]

        ingress = _named(objects, "Ingress", CONSOLE)["spec"]
        assert ingress["ingressClassName"] == "nginx", overlay
        (rule,) = ingress["rules"]
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/", "Prefix"), overlay
        backend = path["backend"]["service"]
        assert backend["name"] == CONSOLE and backend["port"] in ({"name": port["name"]}, {"number": port["port"]})
        # TLS for exactly that host: the console's cookies are Secure.
        (tls,) = ingress["tls"]
        assert tls["hosts"] == [rule["host"]] and tls["secretName"], overlay
        assert rule["host"] == CONSOLE_HOSTS[overlay], (overlay, rule["host"])
    assert _ingress_host(rendered["dev"]) != _ingress_host(rendered["prod"])


def test_network_policy_confines_the_console_pods(rendered):
    for overlay, objects in rendered.items():
        policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
        labels = _console_pod(objects)["metadata"]["labels"]
        # Exactly one policy, its own: the job's would admit any port from its own kind.
        (policy,) = [p for p in policies if _selects(p, labels)]
        assert policy["metadata"]["name"] == CONSOLE, overlay
        job_labels = _one(objects, "FlinkDeployment")["spec"]["podTemplate"]["metadata"]["labels"]
        cron_labels = _cron_pod(objects, CRON_JOBS[0])["metadata"]["labels"]
        assert not _selects(policy, job_labels) and not _selects(policy, cron_labels), overlay
        spec = policy["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"], overlay
        # In: the ingress controller's namespace only, on the console's port only.
        (rule,) = spec["ingress"]
        controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
        assert rule["from"] == [controller], (overlay, rule)
        assert _ports(rule) == {("TCP", _http_port(_console_container(objects))["containerPort"])}, overlay
        # Out: DNS, MongoDB, InfluxDB, and the OpenID Connect issuer on 443; nothing else, no Kafka, no API server.
        for rule in spec["egress"]:
            assert rule.get("ports"), (overlay, rule)
            if any("ipBlock" in peer for peer in rule["to"]):
                assert _ports(rule) == {("TCP", 443)}, (overlay, rule)
        egress = set().union(*(_ports(rule) for rule in spec["egress"]))
        assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 27017), ("TCP", 8086), ("TCP", 443)}, (overlay, egress)


def test_console_disruption_budget_in_prod_keeps_a_replica(rendered):
    budget = _named(rendered["prod"], "PodDisruptionBudget", CONSOLE)["spec"]
    assert budget["selector"]["matchLabels"].items() <= _console_pod(rendered["prod"])["metadata"]["labels"].items()
    assert 1 <= budget["minAvailable"] < _named(rendered["prod"], "Deployment", CONSOLE)["spec"]["replicas"]
    # One dev replica: a budget would block every node drain.
    assert not [o for o in rendered["dev"] if o["kind"] == "PodDisruptionBudget"]
