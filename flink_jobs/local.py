"""Running the audit job on a local MiniCluster: the settings it needs beside the environment's.

Used by `llm-audit run audit`, `llm-audit replay`, the tests and the benches.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from devstack import artifacts
from flink_jobs.reporter import flink_influx_reporter_config
from flink_jobs.settings import AuditJobSettings, load_settings
from udfs.cache import cache_dir


def _quiet_beam_shutdown() -> None:
    """Local runs host the Python worker in-process; when a job ends, Beam's gRPC reader thread
    dies with CANCELLED "Multiplexer hanging up". That is shutdown, not an error: keep it off the console."""
    default = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if (
            args.thread is not None
            and args.thread.name == "read_grpc_client_inputs"
            and "CANCELLED" in str(args.exc_value)
        ):
            return
        default(args)

    threading.excepthook = hook


def local_job_settings(**overrides) -> AuditJobSettings:
    """AuditJobSettings from the environment, plus what a local MiniCluster run needs. Unsigned rule pushes
    are the local default (a deployment must trust keys or ask for them: LLM_AUDIT_RULES_ALLOW_UNSIGNED)."""
    if not {"LLM_AUDIT_RULES_ALLOW_UNSIGNED", "LLM_AUDIT_RULES_TRUSTED_KEYS"} & os.environ.keys():
        overrides.setdefault("rules_allow_unsigned", True)
    settings = load_settings(**overrides)
    _quiet_beam_shutdown()
    # A MiniCluster loads metric reporters from the gateway JVM's classpath (FLINK_LIB_DIR), fixed when
    # this process's first PyFlink call starts the gateway; one already running keeps its classpath.
    if "FLINK_HOME" not in os.environ:
        os.environ.update(artifacts.flink_env())
    database, _, policy = settings.influx_bucket.partition("/")
    local = {
        "python_executable": settings.python_executable or sys.executable,
        "pipeline_jars": settings.pipeline_jars
        or [jar.as_uri() for jar in (artifacts.flink_kafka_connector_jar(), *artifacts.archive_jars())],
        "archive_dir": archive_dir(settings),
        "checkpoint_dir": settings.checkpoint_dir or (cache_dir() / "checkpoints").as_uri(),
        # Flink's own metrics (checkpoints, throughput, Kafka lag) beside the job's: the pipeline dashboard.
        "flink_config": {
            **flink_influx_reporter_config(settings.influx_url, database, retention_policy=policy),
            **settings.flink_config,
        },
    }
    return settings.model_copy(update=local)


def archive_dir(settings: AuditJobSettings) -> str:
    """LLM_AUDIT_ARCHIVE_DIR, or locally the archive under the cache."""
    return settings.archive_dir or (cache_dir() / "archive").as_uri()


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The newest complete checkpoint (a chk-N directory with its _metadata) under a file:// checkpoint dir.

    Ordered by when the _metadata was written, then by N (checkpoint ids go on across restores), never by
    the directory's time: Flink discards a superseded checkpoint's files before its _metadata, so a process
    killed mid-discard leaves an older, half-deleted checkpoint whose directory was touched last.
    """
    root = Path(checkpoint_dir.removeprefix("file://"))
    done = [meta for meta in root.glob("*/chk-*/_metadata") if meta.parent.name.removeprefix("chk-").isdigit()]
    if not done:
        return None
    newest = max(done, key=lambda meta: (meta.stat().st_mtime_ns, int(meta.parent.name.removeprefix("chk-"))))
    return newest.parent.as_uri()
