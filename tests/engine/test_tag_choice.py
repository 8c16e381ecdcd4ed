"""What of a multi-genre verdict goes into a file's tag: top-level genres only by default,
genre and style on request, at most so many, at or above the threshold."""

from __future__ import annotations

import pytest

from classifier.engine.analysis import Analysis, GenreScore
from classifier.engine.cli import UsageError, tag_choice
from classifier.engine.config import TagChoice

PROBABILITIES = {"Electronic": 0.9, "House": 0.7, "Rock": 0.5, "Hard Rock": 0.2, "Jazz": 0.1}
PARENTS = {"House": "Electronic", "Hard Rock": "Rock"}


def verdict(probabilities: dict[str, float] = PROBABILITIES, uncertain: bool = False) -> Analysis:
    ranked = sorted(probabilities.items(), key=lambda item: -item[1])
    return Analysis(
        path="x.flac",
        genres=[GenreScore(g, p, PARENTS.get(g)) for g, p in ranked[:3]],
        probabilities=dict(probabilities),
        styles=[],
        chunks=3,
        duration=9.0,
        model="test",
        uncertain=uncertain,
        min_confidence=0.35,
        tag_spelling={"Electronic": "Electronic", "House": "House", "Rock": "Rock"},
        parents=dict(PARENTS),
    )


def test_top_level_genres_only_by_default():
    assert verdict().tag_values() == ["Electronic", "Rock"]


def test_genre_and_style_on_request():
    assert verdict().tag_values(TagChoice(styles=True)) == ["Electronic", "House", "Rock"]


def test_the_maximum_count_and_the_threshold():
    assert verdict().tag_values(TagChoice(max_count=1)) == ["Electronic"]
    assert verdict().tag_values(TagChoice(styles=True, max_count=2)) == ["Electronic", "House"]
    assert verdict().tag_values(TagChoice(min_confidence=0.1)) == ["Electronic", "Rock", "Jazz"]
    with_hard_rock = verdict().tag_values(TagChoice(styles=True, min_confidence=0.1, max_count=9))
    assert with_hard_rock == ["Electronic", "House", "Rock", "Hard Rock", "Jazz"]


def test_a_style_brings_its_parent_along():
    # A head whose style outscored its parent (an older or hand-made head): House implies
    # Electronic, so Electronic is written even though its own probability is below the bar.
    odd = verdict({"Electronic": 0.2, "House": 0.8, "Rock": 0.1})
    assert odd.tag_values() == ["Electronic"]
    assert odd.tag_values(TagChoice(styles=True)) == ["Electronic", "House"]


def test_an_uncertain_verdict_writes_nothing():
    assert verdict(uncertain=True).tag_values(TagChoice(styles=True)) == []


def test_out_of_range_options_are_refused():
    with pytest.raises(UsageError, match="at least one"):
        tag_choice({"tag_max": 0})
    with pytest.raises(UsageError, match="between 0 and 1"):
        tag_choice({"tag_min_confidence": 1.5})
    assert tag_choice({}) == TagChoice()
