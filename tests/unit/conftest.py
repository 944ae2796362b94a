"""Fixtures the unit tests share."""

import pytest

from udfs.scorers import ScorerSuite, load_config


@pytest.fixture(scope="session")
def entities_suite() -> ScorerSuite:
    """The default scorers' `entities` model, opened once per run (spaCy takes seconds to load)."""
    suite = ScorerSuite(load_config(), ["entities"], "cpu")
    suite.open()
    return suite


@pytest.fixture(scope="session")
def injection_suite() -> ScorerSuite:
    """The default scorers' `injection` model (MiniLM), opened once per run."""
    suite = ScorerSuite(load_config(), ["injection"], "cpu")
    suite.open()
    return suite
