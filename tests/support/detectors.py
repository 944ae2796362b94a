"""What the detector tests share: a detector by name, opened, and what it finds in a text."""

from udfs.detectors import get_detector


def spans(detector_name: str, text: str, **params):
    """(entity, matched text) of each match of the detector, built with these params."""
    cls = get_detector(detector_name)
    detector = cls(cls.Params.model_validate(params))
    detector.open()
    return [(m.entity, text[m.start:m.end]) for m in detector.detect(text)]
