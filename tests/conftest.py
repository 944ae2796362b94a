"""Test tiers by folder: tests/unit (no services), tests/pipeline (PyFlink MiniCluster), tests/integration (local stack)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIERS = ("unit", "pipeline", "integration")
# The tests run the job locally, where unsigned pushes are the default (flink_jobs.local); the tests of
# signed pushes and of deployments set their own.
os.environ.setdefault("LLM_AUDIT_RULES_ALLOW_UNSIGNED", "true")


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(item.fspath).relative_to(ROOT / "tests").parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def stack_settings():
    """The running local stack; started (and stopped afterwards) if it is not up already."""
    from devstack import stack

    settings = stack.StackSettings()
    started = not stack.is_up(settings)
    if started:
        stack.up(settings)
    yield settings
    if started:
        stack.down(settings)


@pytest.fixture
def run_id() -> str:
    """Names this test's topics and databases, so tests never see each other's data."""
    return uuid.uuid4().hex[:10]
