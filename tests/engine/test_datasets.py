"""The three shared sources read as taxonomy labels (their label files only; no audio decoded)."""

from __future__ import annotations

from collections import Counter

import pytest

from classifier.engine.datasets import all_sources
from classifier.engine.multilabel import artist_folds
from tests.conftest import SHARED, require_shared

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def clips():
    for name in ("gtzan_mini", "mer4q", "emotify"):
        require_shared(SHARED / "data" / name)
    return all_sources(SHARED)


def test_every_clip_of_the_three_sources_is_read(clips):
    assert Counter(c.source for c in clips) == {"gtzan": 70, "mer4q": 263, "emotify": 133}
    assert all(c.path.is_file() for c in clips)


def test_source_labels_become_taxonomy_genres(clips):
    disco = [c for c in clips if c.source == "gtzan" and c.raw == "disco"]
    assert disco and all(c.positives == {"Disco", "R&B/Soul"} for c in disco)
    rap = [c for c in clips if c.source == "mer4q" and c.raw == "Rap"]
    assert rap and all(c.positives == {"Hip-Hop"} and c.judged_as == "Hip-Hop" for c in rap)
    alt = [c for c in clips if c.source == "emotify" and c.raw.endswith(": Alt. Rock")]
    assert alt and all({"Alternative Rock", "Rock"} <= c.positives for c in alt)
    assert all(c.judged_as == "Rock" for c in alt)


def test_pop_rock_is_an_ambiguous_label_never_two_positives(clips):
    pop_rock = [c for c in clips if c.source == "mer4q" and "Pop/Rock" in c.raw.split(";")]
    assert len(pop_rock) == 112
    for clip in pop_rock:
        assert not {"Pop", "Rock"} & clip.positives
        assert frozenset({"Pop", "Rock"}) in clip.any_of
    judged = [c for c in pop_rock if c.judged_as]
    assert len(judged) == 36 and {c.judged_as for c in judged} == {"Pop/Rock"}


def test_artist_folds_on_the_real_sources(clips):
    folds = artist_folds(clips, 5)
    by_artist: dict[str, set[int]] = {}
    for clip, fold in zip(clips, folds, strict=True):
        if clip.source != "gtzan":
            by_artist.setdefault(clip.group, set()).add(fold)
    assert all(len(f) == 1 for f in by_artist.values())
    for fold in range(5):  # every fold judges every emotify class
        judged = {c.judged_as for c, f in zip(clips, folds, strict=True) if f == fold}
        assert {"Classical", "Electronic", "Rock"} <= judged
