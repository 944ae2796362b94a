"""Third-party evaluation data (udfs/evaluation/corpora.py): CoNLL-2003's labelled spans and its splits."""

from udfs.evaluation.corpora import CONLL, entity_cases


def test_conll_spans_are_the_labelled_tokens_and_its_documents_do_not_cross_the_split():
    cases = entity_cases()
    assert CONLL.version and CONLL.license and len(cases) > 200
    spans = [(case.text[a:b], entity) for case in cases for a, b, entity in case.spans]
    assert ("Nadim Ladki", "PERSON") in spans and ("United Arab Emirates", "LOCATION") in spans
    assert all(text == text.strip() and text for text, _ in spans)
    train, test = entity_cases("train"), entity_cases("test")
    assert train and test and len(train) + len(test) == len(cases)
    assert not {c.text for c in train} & {c.text for c in test}
