"""The job's settings (flink_jobs/settings.py): the LLM_AUDIT_* variables, and errors that name the variable and
the fix."""

import base64

import pytest

from flink_jobs.settings import SettingsError, load_settings


def test_env_vars_configure_the_job_and_secrets_stay_hidden(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_MONGO_URI", "mongodb://auditor:s3cret@db:27017/")
    monkeypatch.setenv("LLM_AUDIT_PARALLELISM", "4")
    monkeypatch.setenv("LLM_AUDIT_PIPELINE_JARS", '["file:///opt/a.jar"]')
    settings = load_settings()
    assert settings.parallelism == 4 and settings.pipeline_jars == ["file:///opt/a.jar"]
    assert settings.mongo_uri.get_secret_value().startswith("mongodb://auditor:s3cret@")
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("LLM_AUDIT_STARTING_OFFSETS", "oldest", r"LLM_AUDIT_STARTING_OFFSETS='oldest': Input should be 'earliest', 'latest' or 'committed'"),
        ("LLM_AUDIT_PARALLELISM", "0", r"LLM_AUDIT_PARALLELISM='0': Input should be greater than or equal to 1"),
        ("LLM_AUDIT_BOUNDED", "maybe", r"LLM_AUDIT_BOUNDED='maybe': Input should be a valid boolean"),
    ],
)
def test_invalid_env_values_name_the_variable_and_the_valid_options(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_unknown_override_is_rejected():
    with pytest.raises(SettingsError, match="LLM_AUDIT_KAFKA_BOOTSTRAPS"):
        load_settings(kafka_bootstraps="x:9092")


def test_a_misspelt_env_var_is_an_error_that_lists_the_valid_ones(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_BOOSTRAP", "broker:9092")
    monkeypatch.setenv("LLM_AUDIT_STACK_KAFKA_PORT", "9192")  # the local stack's, not the job's: fine
    with pytest.raises(SettingsError, match=r"unknown environment variables \['LLM_AUDIT_KAFKA_BOOSTRAP'\]; valid: .*LLM_AUDIT_KAFKA_BOOTSTRAP"):
        load_settings()


def test_sasl_without_credentials_is_an_error_that_does_not_echo_other_secrets(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LLM_AUDIT_MONGO_URI", "mongodb://auditor:s3cret@db:27017/")
    with pytest.raises(SettingsError, match="needs LLM_AUDIT_KAFKA_SASL_USERNAME and LLM_AUDIT_KAFKA_SASL_PASSWORD") as err:
        load_settings()
    assert "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    "var, value, message",
    [
        # execution.checkpointing.dir refuses a path without a scheme ("The scheme (hdfs://, file://, etc) is null").
        ("LLM_AUDIT_CHECKPOINT_DIR", "/var/lib/audit/ckpt",
         r"LLM_AUDIT_CHECKPOINT_DIR='/var/lib/audit/ckpt': has no scheme; Flink needs a URI such as "
         r"file:///var/lib/audit/ckpt or s3://bucket/path"),
        ("LLM_AUDIT_CHECKPOINT_DIR", "ckpt", r"LLM_AUDIT_CHECKPOINT_DIR='ckpt': is a relative path; Flink needs a URI"),
        ("LLM_AUDIT_ARCHIVE_DIR", "archive", r"LLM_AUDIT_ARCHIVE_DIR='archive': is a relative path; Flink needs an absolute path or a URI"),
        ("LLM_AUDIT_CHECKPOINT_DIR", "file://var/lib/ckpt",
         r"LLM_AUDIT_CHECKPOINT_DIR='file://var/lib/ckpt': names host 'var'; a local path takes three slashes: file:///var/lib/ckpt"),
        ("LLM_AUDIT_ARCHIVE_DIR", "s4://bucket/events", r"LLM_AUDIT_ARCHIVE_DIR='s4://bucket/events': scheme 's4' is no file system of Flink's; valid: file, s3, "),
        ("LLM_AUDIT_RESTORE_FROM", "s3:/ckpt/chk-7", r"LLM_AUDIT_RESTORE_FROM='s3:/ckpt/chk-7': names no bucket; Flink needs s3://bucket/path"),
        ("LLM_AUDIT_RULES_TOPIC", "audit rules", r"LLM_AUDIT_RULES_TOPIC='audit rules': is not a Kafka topic name: 1 to 249 of the characters"),
        ("LLM_AUDIT_DLQ_TOPIC", "", r"LLM_AUDIT_DLQ_TOPIC='': is not a Kafka topic name"),
        ("LLM_AUDIT_SOURCE_TOPIC", "..", r"LLM_AUDIT_SOURCE_TOPIC='..': is not a Kafka topic name"),
        ("LLM_AUDIT_SOURCE_TOPIC", "x" * 250, r"LLM_AUDIT_SOURCE_TOPIC='x{250}': is not a Kafka topic name"),
        ("LLM_AUDIT_GROUP_ID", "", r"LLM_AUDIT_GROUP_ID='': String should have at least 1 character"),
        ("LLM_AUDIT_PIPELINE_JARS", '["/opt/a.jar"]',
         r"LLM_AUDIT_PIPELINE_JARS=\['/opt/a.jar'\]: '/opt/a.jar' is not a URL; Flink needs one such as file:///opt/a.jar"),
    ],
)
def test_settings_flink_or_kafka_would_refuse_late_are_refused_at_start_with_the_fix(monkeypatch, var, value, message):
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


@pytest.mark.parametrize(
    "var, value",
    [
        ("LLM_AUDIT_CHECKPOINT_DIR", "file:///var/lib/audit/ckpt"),
        ("LLM_AUDIT_CHECKPOINT_DIR", "file:/var/lib/audit/ckpt"),  # Flink takes it: no host
        ("LLM_AUDIT_CHECKPOINT_DIR", "s3://audit/checkpoints"),
        ("LLM_AUDIT_CHECKPOINT_DIR", "hdfs:///flink/checkpoints"),  # the default namenode
        ("LLM_AUDIT_CHECKPOINT_DIR", "abfss://ckpt@account.dfs.core.windows.net/audit"),
        # Restores and the archive fall back to the local file system for a path without a scheme.
        ("LLM_AUDIT_RESTORE_FROM", "/var/lib/audit/ckpt/3f2a/chk-7"),
        ("LLM_AUDIT_ARCHIVE_DIR", "/var/lib/audit/archive"),
        ("LLM_AUDIT_ARCHIVE_DIR", "s3a://llm-audit-archive/events"),
        ("LLM_AUDIT_SOURCE_TOPIC", "it-1a2b.model-audit_logs"),
    ],
)
def test_uris_and_names_flink_and_kafka_take_are_kept_as_given(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    assert getattr(load_settings(), var.removeprefix("LLM_AUDIT_").lower()) == value


def test_a_job_without_trusted_keys_must_ask_for_unsigned_pushes(monkeypatch):
    monkeypatch.delenv("LLM_AUDIT_RULES_ALLOW_UNSIGNED", raising=False)
    with pytest.raises(SettingsError, match=r"set LLM_AUDIT_RULES_TRUSTED_KEYS .* or LLM_AUDIT_RULES_ALLOW_UNSIGNED=true"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_RULES_ALLOW_UNSIGNED", "true")
    assert load_settings().rules_allow_unsigned


KEY = base64.b64encode(bytes(range(32))).decode()


def test_encrypted_archive_text_needs_a_valid_key(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_TEXT", "encrypted")
    with pytest.raises(SettingsError, match="needs LLM_AUDIT_ARCHIVE_KEY"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_KEY", "c2hvcnQ=")
    with pytest.raises(SettingsError, match="not 5"):
        load_settings()
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_KEY", KEY)
    assert load_settings().archive_key.get_secret_value() == KEY
    monkeypatch.setenv("LLM_AUDIT_ARCHIVE_TEXT", "plain")
    with pytest.raises(SettingsError, match="LLM_AUDIT_ARCHIVE_TEXT='plain'.*'redacted', 'none' or 'encrypted'"):
        load_settings()
