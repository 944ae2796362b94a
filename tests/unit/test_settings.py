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
