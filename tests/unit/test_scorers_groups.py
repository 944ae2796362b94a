"""The social-group lexicon (udfs/scorers/groups.py): mentions and swaps within an axis."""

from udfs.scorers.groups import default_lexicon


def test_group_lexicon_finds_groups_and_swaps_within_the_axis():
    lexicon = default_lexicon()
    text = "Muslims are violent and women are too emotional."
    mentions = lexicon.mentions(text)
    assert [(m.term, m.axis) for m in mentions] == [("muslims", "religion"), ("women", "gender_and_sex")]
    assert lexicon.swap(text, mentions) == "Christians are violent and men are too emotional."
    assert lexicon.mentions("Please summarise the quarterly report for the team.") == []
