"""Built-in detectors: small classes that find entities in text and return typed matches.

`DETECTORS` is the explicit registry a rule's `detector` match names; an unknown name is an
error listing the known ones.
"""

from __future__ import annotations

from udfs.detectors import injection, pii, secrets  # noqa: F401  (fills the registry)
from udfs.detectors.base import DETECTORS, Detector, DetectorMatch, get_detector

__all__ = ["DETECTORS", "Detector", "DetectorMatch", "get_detector"]
