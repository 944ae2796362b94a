"""The streaming job's Flink environment: configuration from the settings, checkpoints, restarts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyflink.common import Configuration, Duration, WatermarkStrategy
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

from flink_jobs.settings import AuditJobSettings


def flink_configuration(settings: AuditJobSettings) -> dict[str, str]:
    """The Flink options the settings imply; LLM_AUDIT_FLINK_CONFIG is applied last and wins."""
    conf = {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(settings.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{settings.restart_delay_s} s",
        "state.backend.type": settings.state_backend,
        "python.execution-mode": settings.python_execution_mode,
        "python.fn-execution.bundle.size": str(settings.python_bundle_size),
        "python.fn-execution.bundle.time": str(settings.python_bundle_time_ms),
    }
    if settings.state_backend == "rocksdb":
        conf["execution.checkpointing.incremental"] = "true"
    if settings.python_executable:
        conf["python.executable"] = settings.python_executable
        # Thread mode's interpreter lives in the JVM and sees neither the virtualenv of that executable
        # nor an editable checkout (an import hook, which PYTHONPATH does not carry): give it the
        # module path of this process (the same virtualenv, locally and in the image) and the folder
        # holding flink_jobs/ and udfs/.
        paths = [str(Path(__file__).resolve().parents[2]), *(path for path in sys.path if path)]
        conf["python.pythonpath"] = os.pathsep.join(dict.fromkeys(paths))
    if settings.pipeline_jars:
        conf["pipeline.jars"] = ";".join(settings.pipeline_jars)
    if settings.checkpoint_dir:
        conf["execution.checkpointing.dir"] = settings.checkpoint_dir
        conf["execution.checkpointing.externalized-checkpoint-retention"] = "RETAIN_ON_CANCELLATION"
    if settings.restore_from:
        conf["execution.state-recovery.path"] = settings.restore_from
    return {**conf, **settings.flink_config}


def create_env(settings: AuditJobSettings) -> StreamExecutionEnvironment:
    config = Configuration()
    for key, value in flink_configuration(settings).items():
        config.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(config)
    env.set_parallelism(settings.parallelism)
    env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env


def bounded_watermarks(settings: AuditJobSettings) -> WatermarkStrategy:
    return WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_seconds(settings.max_out_of_orderness_s)
    ).with_idleness(Duration.of_seconds(settings.idleness_s))
