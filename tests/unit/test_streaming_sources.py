"""The events topic as a Flink SQL table (flink_jobs/streaming/sources.py): its connector options from the settings."""

from flink_jobs.settings import load_settings


def test_the_events_table_reads_the_source_topic_with_the_settings_offsets_bounds_and_client_properties(monkeypatch):
    from flink_jobs.streaming.sources import kafka_table_options

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
