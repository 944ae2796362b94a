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


def test_sasl_ssl_settings_become_kafka_client_properties_with_the_shaded_login_module(monkeypatch):
    from flink_jobs.audit_job import kafka_properties

    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_USERNAME", "auditor")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_PASSWORD", 'p"w\\d')
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PATH", "/etc/kafka/ca.pem")
    props = kafka_properties(load_settings())
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-256"
    assert props["sasl.jaas.config"] == ('org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.'
                                         'ScramLoginModule required username="auditor" password="p\\"w\\\\d";')
    assert props["ssl.truststore.location"] == "/etc/kafka/ca.pem" and props["ssl.truststore.type"] == "PEM"
    assert "ssl.keystore.location" not in props


def test_sasl_without_credentials_is_an_error_that_does_not_echo_other_secrets(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("LLM_AUDIT_MONGO_URI", "mongodb://auditor:s3cret@db:27017/")
    with pytest.raises(SettingsError, match="needs LLM_AUDIT_KAFKA_SASL_USERNAME and LLM_AUDIT_KAFKA_SASL_PASSWORD") as err:
        load_settings()
    assert "s3cret" not in str(err.value)


def test_flink_options_follow_the_settings_and_flink_config_wins(monkeypatch):
    from flink_jobs.audit_job import flink_configuration

    monkeypatch.setenv("LLM_AUDIT_STATE_BACKEND", "rocksdb")
    monkeypatch.setenv("LLM_AUDIT_RESTORE_FROM", "file:///ckpt/job/chk-7")
    monkeypatch.setenv("LLM_AUDIT_FLINK_CONFIG", '{"python.fn-execution.bundle.size": "50", "metrics.reporters": "influx"}')
    conf = flink_configuration(load_settings(python_execution_mode="thread"))
    assert conf["state.backend.type"] == "rocksdb" and conf["execution.checkpointing.incremental"] == "true"
    assert conf["execution.state-recovery.path"] == "file:///ckpt/job/chk-7"
    assert conf["python.execution-mode"] == "thread"
    assert conf["python.fn-execution.bundle.size"] == "50" and conf["metrics.reporters"] == "influx"


def test_the_events_table_reads_the_source_topic_with_the_settings_offsets_bounds_and_client_properties(monkeypatch):
    from flink_jobs.audit_job import kafka_table_options

    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_USERNAME", "auditor")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_PASSWORD", "pw")
    settings = load_settings()
    options = kafka_table_options(settings)
    assert (options["topic"], options["properties.group.id"]) == (settings.source_topic, settings.group_id)
    assert options["scan.startup.mode"] == "group-offsets" and "scan.bounded.mode" not in options
    assert options["properties.isolation.level"] == "read_committed"
    assert options["properties.security.protocol"] == "SASL_SSL"
    assert options["properties.sasl.jaas.config"].endswith('username="auditor" password="pw";')
    bounded = kafka_table_options(settings.model_copy(update={"bounded": True, "starting_offsets": "earliest"}))
    assert (bounded["scan.startup.mode"], bounded["scan.bounded.mode"]) == ("earliest-offset", "latest-offset")
    replay = kafka_table_options(settings, between_ms=(1000, 2000))
    assert (replay["scan.startup.mode"], replay["scan.startup.timestamp-millis"]) == ("timestamp", "1000")
    assert (replay["scan.bounded.mode"], replay["scan.bounded.timestamp-millis"]) == ("timestamp", "2000")
