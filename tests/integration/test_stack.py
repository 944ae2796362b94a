import socket

import pytest

from devstack import stack


def test_all_services_healthy_and_up_is_idempotent(stack_settings):
    assert stack.status(stack_settings) == {"kafka": "healthy", "ferretdb": "healthy", "influxdb": "healthy"}
    pids = {s.name: stack.running_pid(stack_settings, s) for s in stack.SERVICES}
    stack.up(stack_settings)
    assert {s.name: stack.running_pid(stack_settings, s) for s in stack.SERVICES} == pids


def test_topics_exist_and_audit_rules_is_compacted(stack_settings):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=stack_settings.kafka_bootstrap)
    try:
        assert set(stack.TOPICS) <= set(admin.list_topics())
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "audit-rules")])
        assert configs["topic"]["audit-rules"]["cleanup.policy"]["value"] == "compact"
    finally:
        admin.close()


def test_a_taken_port_is_named_in_the_error(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        settings = stack.StackSettings(dir=tmp_path, kafka_port=port, kafka_controller_port=port + 1)
        with pytest.raises(stack.StackError, match=f"kafka: port {port} on 127.0.0.1 is already in use"):
            stack.up(settings)
    assert not any(tmp_path.glob("*.pid"))  # nothing was started
