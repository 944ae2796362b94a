"""The Jigsaw BiLSTM toxicity backend (udfs/scorers/jigsaw.py): the torch port of the Keras model."""

import pytest

from udfs.scorers.jigsaw import JigsawBiLSTM


@pytest.fixture(scope="module")
def bilstm():
    scorer = JigsawBiLSTM()
    scorer.open("cpu")
    return scorer


# The toxic-comment-classifier README's outputs (Keras, TensorFlow): the torch port must reproduce them.
README_MEAN_SCORES = {
    "I hate you so much!": 0.1395, "This is wonderful news.": 0.0013, "You're disgusting!": 0.3110,
    "Absolutely love your energy!": 0.0088, "You're the worst person ever!": 0.0937, "Have a nice day :)": 0.0115,
}


def test_bilstm_port_reproduces_the_keras_model_to_four_decimals(bilstm):
    scores = bilstm.score(["You are so dumb and stupid!", *README_MEAN_SCORES])
    assert {k: round(v, 4) for k, v in scores[0].items()} == {
        "toxic": 0.9889, "severe_toxic": 0.0726, "obscene": 0.6204, "threat": 0.0193, "insult": 0.8664,
        "identity_hate": 0.0407}
    for (text, expected), got in zip(README_MEAN_SCORES.items(), scores[1:]):
        assert round(sum(got.values()) / len(got), 4) == expected, text


def test_long_texts_are_chunked_so_late_toxicity_is_not_truncated_away(bilstm):
    insult = "you are a stupid worthless idiot"
    filler = "thanks for the meeting notes about the quarterly roadmap " * 40  # ~360 tokens
    late, early = bilstm.score([filler + insult, insult + " " + filler])
    assert late["toxic"] > 0.8 and early["toxic"] > 0.8
    assert bilstm.score([filler])[0]["toxic"] < 0.2
