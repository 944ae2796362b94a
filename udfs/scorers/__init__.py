"""Model scorers (toxicity, bias): batched, offline, on a GPU when there is one."""

# Importing the backends registers them.
from udfs.scorers import ensemble, hf, jigsaw, profanity  # noqa: F401
from udfs.scorers.base import BACKENDS, LabelScores, Scorer, ScorerError, get_backend, pick_device  # noqa: F401
from udfs.scorers.suite import SCORER_NAMES, ScorersConfig, ScorerSuite, TextScores, load_config  # noqa: F401
