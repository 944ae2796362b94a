"""`llm-audit stack up|down|status`: Kafka (KRaft), FerretDB and InfluxDB as local processes.

Every service binds 127.0.0.1 only, keeps its data and log under the stack directory,
and is health-checked through its own protocol, not only its port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from devstack import artifacts
from devstack.artifacts import say

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """The stack cannot start or is unhealthy; the message names the service, port and log."""


class StackSettings(BaseSettings):
    """Where the local stack listens and keeps its data. Env vars: LLM_AUDIT_STACK_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="LLM_AUDIT_STACK_", frozen=True)

    dir: Path = Field(default_factory=lambda: artifacts.cache_dir() / "stack")
    """LLM_AUDIT_STACK_DIR: data, logs and pid files of the running services."""
    kafka_port: int = 9092
    """LLM_AUDIT_STACK_KAFKA_PORT: Kafka client listener."""
    kafka_controller_port: int = 9093
    """LLM_AUDIT_STACK_KAFKA_CONTROLLER_PORT: KRaft controller listener."""
    mongo_port: int = 27017
    """LLM_AUDIT_STACK_MONGO_PORT: FerretDB (MongoDB wire protocol)."""
    influx_port: int = 8086
    """LLM_AUDIT_STACK_INFLUX_PORT: InfluxDB HTTP API."""
    influx_rpc_port: int = 8088
    """LLM_AUDIT_STACK_INFLUX_RPC_PORT: InfluxDB backup/restore RPC."""
    start_timeout_s: float = 90.0
    """LLM_AUDIT_STACK_START_TIMEOUT_S: how long a service may take to become healthy."""

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def mongo_uri(self) -> str:
        return f"mongodb://{HOST}:{self.mongo_port}/"

    @property
    def influx_url(self) -> str:
        return f"http://{HOST}:{self.influx_port}"


TOPICS = {
    # Events keep their own (possibly past) timestamps: no time retention on a stack that predates the broker's.
    "model-audit-logs": {"retention.ms": "-1"},
    "model-audit-dlq": {},
    "audit-rules": {"cleanup.policy": "compact"},  # one partition: pushes stay in order
}
# The audit events are read by several source subtasks when the job scales out; the job watermarks
# each partition on its own.
SOURCE_PARTITIONS = 4
INFLUX_DATABASE = "llm_audit"


@dataclass(frozen=True)
class Service:
    """One local process: how to prepare and start it and how to know it is healthy."""

    name: str
    ports: Callable[[StackSettings], tuple[int, ...]]
    command: Callable[[StackSettings, Path], list[str]]
    healthy: Callable[[StackSettings], bool]
    prepare: Callable[[StackSettings, Path], None] = lambda settings, data: None
    after_start: Callable[[StackSettings], None] = lambda settings: None


# --- Kafka ---------------------------------------------------------------------------------------

def _kafka_config(settings: StackSettings, data: Path) -> Path:
    path = data / "server.properties"
    path.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.bootstrap.servers={HOST}:{settings.kafka_controller_port}",
                f"listeners=PLAINTEXT://{HOST}:{settings.kafka_port},CONTROLLER://{HOST}:{settings.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{HOST}:{settings.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
                f"log.dirs={data / 'logs'}",
                "num.partitions=1",
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "group.initial.rebalance.delay.ms=0",
                # Flink's exactly-once sink holds transactions open across checkpoints.
                "transaction.max.timeout.ms=3600000",
                # No time retention: tests, benches and replays write events with past timestamps, and the default
                # (7 days, checked every 5 minutes) deleted them between produce and read once they were older.
                "log.retention.ms=-1",
                "",
            ]
        )
    )
    return path


def _java(settings: StackSettings, main: str, *args: str) -> list[str]:
    return [
        "java", "-Xms256m", "-Xmx768m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp", f"{artifacts.kafka_libs()}/*", main, *args,
    ]


def _kafka_prepare(settings: StackSettings, data: Path) -> None:
    config = _kafka_config(settings, data)
    if (data / "logs" / "meta.properties").exists():
        return
    cluster_id = subprocess.run(
        _java(settings, "kafka.tools.StorageTool", "random-uuid"), capture_output=True, text=True, check=True
    ).stdout.strip()
    result = subprocess.run(
        _java(settings, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config), "--standalone"),
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise StackError(f"kafka: formatting storage in {data} failed:\n{result.stdout}{result.stderr}")


def _kafka_healthy(settings: StackSettings) -> bool:
    from kafka import KafkaAdminClient
    from kafka.errors import RetriableError

    unavailable = (RetriableError, OSError)  # not up yet; anything else is a real error
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=3000)
    except unavailable:
        return False
    try:
        admin.list_topics()
        return True
    except unavailable:
        return False
    finally:
        admin.close()


def _kafka_topics(settings: StackSettings) -> None:
    create_job_topics(settings.kafka_bootstrap, *TOPICS)


def create_job_topics(bootstrap: str, source: str, dlq: str, rules: str) -> None:
    """A job's three topics, as the stack's own are made (idempotent)."""
    create_topics(bootstrap, {source: TOPICS["model-audit-logs"]}, partitions=SOURCE_PARTITIONS)
    create_topics(bootstrap, {dlq: TOPICS["model-audit-dlq"], rules: TOPICS["audit-rules"]})


def create_topics(bootstrap: str, topics: dict[str, dict[str, str]], partitions: int = 1) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        missing = [name for name in topics if name not in set(admin.list_topics())]
        if missing:
            admin.create_topics(
                [NewTopic(name, partitions, 1, topic_configs=topics[name]) for name in missing]
            )
    finally:
        admin.close()


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete the topics that exist (idempotent)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        listed = set(admin.list_topics())
        existing = [name for name in topics if name in listed]
        if existing:
            admin.delete_topics(existing)
    finally:
        admin.close()


# --- FerretDB ------------------------------------------------------------------------------------

def _mongo_healthy(settings: StackSettings) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient = MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=1500)
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


# --- InfluxDB ------------------------------------------------------------------------------------

def _influx_prepare(settings: StackSettings, data: Path) -> None:
    (data / "influxdb.conf").write_text(
        f"""reporting-disabled = true
bind-address = "{HOST}:{settings.influx_rpc_port}"
[meta]
  dir = "{data / 'meta'}"
  logging-enabled = false
[data]
  dir = "{data / 'data'}"
  wal-dir = "{data / 'wal'}"
  query-log-enabled = false
  trace-logging-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "{HOST}:{settings.influx_port}"
  auth-enabled = false
  log-enabled = false
  flux-enabled = true
  pprof-enabled = false
[logging]
  level = "warn"
"""
    )


def _influx_healthy(settings: StackSettings) -> bool:
    try:
        with urllib.request.urlopen(f"{settings.influx_url}/ping", timeout=2) as resp:
            return resp.status == 204
    except (urllib.error.URLError, OSError):
        return False


def create_influx_database(url: str, database: str) -> None:
    """Create an InfluxDB 1.x database (idempotent); 2.x users create the bucket instead."""
    _influx_query(url, f'CREATE DATABASE "{database}"')


def drop_influx_database(url: str, database: str) -> None:
    """Drop an InfluxDB 1.x database (idempotent)."""
    _influx_query(url, f'DROP DATABASE "{database}"')


def _influx_query(url: str, query: str) -> None:
    body = urllib.parse.urlencode({"q": query}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=body), timeout=10) as resp:
        resp.read()


# --- lifecycle -----------------------------------------------------------------------------------

SERVICES = (
    Service(
        name="kafka",
        ports=lambda s: (s.kafka_port, s.kafka_controller_port),
        command=lambda s, data: _java(s, "kafka.Kafka", str(data / "server.properties")),
        healthy=_kafka_healthy,
        prepare=_kafka_prepare,
        after_start=_kafka_topics,
    ),
    Service(
        name="ferretdb",
        ports=lambda s: (s.mongo_port,),
        command=lambda s, data: [
            str(artifacts.ferretdb_binary()), "-listen-addr", f"{HOST}:{s.mongo_port}",
            "-sqlite-dir", str(data / "sqlite"), "-log-level", "warn",
        ],
        healthy=_mongo_healthy,
    ),
    Service(
        name="influxdb",
        ports=lambda s: (s.influx_port, s.influx_rpc_port),
        command=lambda s, data: [str(artifacts.influxd_binary()), "run", "-config", str(data / "influxdb.conf")],
        healthy=_influx_healthy,
        prepare=_influx_prepare,
        after_start=lambda s: create_influx_database(s.influx_url, INFLUX_DATABASE),
    ),
)


def _pid_file(settings: StackSettings, service: Service) -> Path:
    return settings.dir / f"{service.name}.pid"


def running_pid(settings: StackSettings, service: Service) -> int | None:
    """The service's pid if that process still runs it (a stale pid file may name a reused pid)."""
    try:
        pid = int(_pid_file(settings, service).read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid if str(settings.dir / service.name) in cmdline else None


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def _services(only: tuple[str, ...] | None) -> tuple[Service, ...]:
    names = [service.name for service in SERVICES]
    unknown = set(only or ()) - set(names)
    if unknown:
        raise StackError(f"unknown services {sorted(unknown)}; valid: {', '.join(names)}")
    return tuple(service for service in SERVICES if only is None or service.name in only)


def up(settings: StackSettings | None = None, only: tuple[str, ...] | None = None) -> None:
    """Start every service (or those named) not yet running and wait until all are healthy (idempotent)."""
    settings = settings or StackSettings()
    settings.dir.mkdir(parents=True, exist_ok=True)
    artifacts.ensure_all()
    for service in _services(only):
        if running_pid(settings, service) is not None:
            _wait_healthy(settings, service)
            service.after_start(settings)
            say(f"✓ {service.name} already running")
            continue
        for port in service.ports(settings):
            if _port_in_use(port):
                raise StackError(
                    f"{service.name}: port {port} on {HOST} is already in use by another process; stop that "
                    f"process or choose another port with LLM_AUDIT_STACK_*_PORT (see `llm-audit stack --help`)"
                )
        data = settings.dir / service.name
        data.mkdir(parents=True, exist_ok=True)
        service.prepare(settings, data)
        log = (settings.dir / f"{service.name}.log").open("ab")
        proc = subprocess.Popen(
            service.command(settings, data), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=data, start_new_session=True,
        )
        _pid_file(settings, service).write_text(str(proc.pid))
        _wait_healthy(settings, service, proc)
        service.after_start(settings)
        say(f"✓ {service.name} started on {HOST}:{service.ports(settings)[0]}")


def _wait_healthy(settings: StackSettings, service: Service, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + settings.start_timeout_s
    while time.monotonic() < deadline:
        if service.healthy(settings):
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    log = settings.dir / f"{service.name}.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise StackError(f"{service.name} did not become healthy within {settings.start_timeout_s:.0f}s; "
                     f"log {log}:\n{tail}")


def down(settings: StackSettings | None = None, only: tuple[str, ...] | None = None) -> None:
    """Stop every service (or those named) this stack started; data stays for the next `up`."""
    settings = settings or StackSettings()
    for service in reversed(_services(only)):
        pid = running_pid(settings, service)
        if pid is not None:
            _terminate(pid)
            say(f"■ {service.name} stopped")
        _pid_file(settings, service).unlink(missing_ok=True)


def _terminate(pid: int, timeout_s: float = 20.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        _reap(pid)
        time.sleep(0.2)
    os.killpg(pid, signal.SIGKILL)


def _reap(pid: int) -> None:
    """Collect an exited child (a service started by this very process) so it does not linger."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def status(settings: StackSettings | None = None) -> dict[str, str]:
    """Each service's state: healthy, unhealthy (running but not answering) or stopped."""
    settings = settings or StackSettings()
    states = {}
    for service in SERVICES:
        if running_pid(settings, service) is None:
            states[service.name] = "stopped"
        else:
            states[service.name] = "healthy" if service.healthy(settings) else "unhealthy"
    return states


def is_up(settings: StackSettings | None = None) -> bool:
    return all(state == "healthy" for state in status(settings).values())
