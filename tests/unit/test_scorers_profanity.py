"""The profanity SVM backend (udfs/scorers/profanity.py)."""

from udfs.scorers.profanity import ProfanitySVM


def test_profanity_svm_separates_swearing_from_plain_text():
    svm = ProfanitySVM()
    svm.open()
    profane, plain = svm.score(["shut the fuck up, you shit", "the invoice is attached, thanks"])
    assert profane["profanity"] > 0.9 > 0.1 > plain["profanity"]
