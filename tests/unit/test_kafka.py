"""The one Kafka client configuration (flink_jobs/kafka.py): the job's Java clients and the CLI's kafka-python reach
the same brokers the same way, or the CLI says why it cannot."""

import pytest

from flink_jobs.kafka import ClientConfigError, client_config, kafka_properties
from flink_jobs.settings import load_settings


def test_sasl_ssl_settings_become_kafka_client_properties_with_the_shaded_login_module(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_USERNAME", "auditor")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_PASSWORD", 'p"w\\d')
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PATH", "/etc/kafka/ca.pem")
    props = kafka_properties(load_settings())
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-256"
    assert props["sasl.jaas.config"] == (
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram."
        'ScramLoginModule required username="auditor" password="p\\"w\\\\d";'
    )
    assert props["ssl.truststore.location"] == "/etc/kafka/ca.pem" and props["ssl.truststore.type"] == "PEM"
    assert "ssl.keystore.location" not in props


def test_the_python_client_gets_the_same_sasl_and_tls_as_the_java_one(monkeypatch):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_USERNAME", "auditor")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SASL_PASSWORD", "pw")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_TRUSTSTORE_PATH", "/etc/kafka/ca.crt")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_KEYSTORE_PATH", "/etc/kafka/client.pem")
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SSL_KEYSTORE_PASSWORD", "kpw")
    settings = load_settings()
    java, python = kafka_properties(settings), client_config(settings)
    assert python["security_protocol"] == java["security.protocol"] == "SASL_SSL"
    assert python["sasl_mechanism"] == java["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (python["sasl_plain_username"], python["sasl_plain_password"]) == ("auditor", "pw")
    assert python["ssl_cafile"] == java["ssl.truststore.location"] == "/etc/kafka/ca.crt"
    # The client certificate, which the CLI used to drop: the same PEM file holds the chain and the key.
    assert python["ssl_certfile"] == python["ssl_keyfile"] == java["ssl.keystore.location"] == "/etc/kafka/client.pem"
    assert python["ssl_password"] == java["ssl.keystore.password"] == "kpw"


@pytest.mark.parametrize(
    "store, path, kind",
    [("KEYSTORE", "/etc/kafka/client.p12", "PKCS12"), ("TRUSTSTORE", "/etc/kafka/truststore.jks", "JKS")],
)
def test_a_store_the_python_client_cannot_read_is_an_error_that_says_how_to_fix_it(monkeypatch, store, path, kind):
    monkeypatch.setenv("LLM_AUDIT_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv(f"LLM_AUDIT_KAFKA_SSL_{store}_PATH", path)
    settings = load_settings()
    assert kafka_properties(settings)[f"ssl.{store.lower()}.type"] == kind  # the job reads it
    with pytest.raises(ClientConfigError, match=rf"LLM_AUDIT_KAFKA_SSL_{store}_PATH='{path}' is a {kind} store.*PEM"):
        client_config(settings)
