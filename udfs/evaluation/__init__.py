"""How well the detectors and scorers do on labelled data: third-party corpora and our synthetic set."""
