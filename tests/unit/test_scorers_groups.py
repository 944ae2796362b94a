"""The social-group lexicon (udfs/scorers/groups.py): mentions and swaps within an axis."""

from udfs.scorers.groups import default_lexicon


def test_group_lexicon_finds_groups_and_swaps_within_the_axis():
    lexicon = default_lexicon()
    text = "Muslims are violent and women are too emotional."
    mentions = lexicon.mentions(text)
    assert [(m.term, m.axis) for m in mentions] == [("muslims", "religion"), ("women", "gender_and_sex")]
    assert lexicon.swap(text, mentions) == "Christians are violent and men are too emotional."
    assert lexicon.mentions("Please summarise the quarterly report for the team.") == []


def test_mentions_are_what_the_whole_pattern_finds_on_any_mix_of_terms():
    # The lexicon tries its pattern only where a term's first word starts (12x faster): the same mentions as
    # scanning every position, on texts made of terms, their case variants, parts and separators.
    import random

    lexicon = default_lexicon()
    terms = sorted(lexicon.axis_of)
    rng = random.Random(0)
    pieces = [*terms, "the", "Women's", "MEN", "non", "x-", "-", "_", "old", "year-old", "ſ"]
    for _ in range(2000):
        text = rng.choice([" ", "-", "", "_", "'", ", "]).join(rng.choice(pieces) for _ in range(6))
        expected = [(m.group().lower(), m.start(), m.end()) for m in lexicon._pattern.finditer(text)
                    if m.group().lower() in lexicon.axis_of]
        assert [(m.term, m.start, m.end) for m in lexicon.mentions(text)] == expected, text
