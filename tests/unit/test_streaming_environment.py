"""The job's Flink configuration (flink_jobs/streaming/environment.py), from the settings."""

from flink_jobs.settings import load_settings


def test_flink_options_follow_the_settings_and_flink_config_wins(monkeypatch):
    from flink_jobs.streaming.environment import flink_configuration

    monkeypatch.setenv("LLM_AUDIT_STATE_BACKEND", "rocksdb")
    monkeypatch.setenv("LLM_AUDIT_RESTORE_FROM", "file:///ckpt/job/chk-7")
    monkeypatch.setenv("LLM_AUDIT_FLINK_CONFIG", '{"python.fn-execution.bundle.size": "50", "metrics.reporters": "influx"}')
    conf = flink_configuration(load_settings(python_execution_mode="thread"))
    assert conf["state.backend.type"] == "rocksdb" and conf["execution.checkpointing.incremental"] == "true"
    assert conf["execution.state-recovery.path"] == "file:///ckpt/job/chk-7"
    assert conf["python.execution-mode"] == "thread"
    assert conf["python.fn-execution.bundle.size"] == "50" and conf["metrics.reporters"] == "influx"
