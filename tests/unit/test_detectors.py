"""The detectors' registry (udfs/detectors/__init__.py): a rule's detector by name."""

import pytest

from udfs.detectors import DETECTORS, get_detector


def test_unknown_detector_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown detector 'ner'; valid detectors: pii, prompt_injection, secrets"):
        get_detector("ner")
    assert set(DETECTORS) == {"pii", "prompt_injection", "secrets"}
