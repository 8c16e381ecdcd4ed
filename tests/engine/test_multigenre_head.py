"""The shipped multi-genre head (bundled/multigenre) end to end on real clips: independent,
calibrated probabilities, and a style reported with its parent ranked before it."""

from __future__ import annotations

import dataclasses

import pytest

from classifier.engine.head import read_head_info
from classifier.engine.registry import MULTIGENRE_HEAD
from classifier.engine.runner import get_engine


@pytest.fixture(scope="module")
def engine(engine_config):
    return get_engine(dataclasses.replace(engine_config, head_path=MULTIGENRE_HEAD))


def test_the_multigenre_head_gives_independent_probabilities(engine, gtzan_dir):
    # The head saw this clip in training: this checks the wiring, not generalisation.
    analysis = engine.analyse(gtzan_dir / "classical" / "classical.00001.flac")
    assert read_head_info(MULTIGENRE_HEAD).activation == "sigmoid"
    assert set(analysis.probabilities) == set(read_head_info(MULTIGENRE_HEAD).genres)
    assert all(0.0 <= p <= 1.0 for p in analysis.probabilities.values())
    assert analysis.primary == "Classical"
    assert analysis.genres[0].parent is None


def test_a_style_is_reported_with_its_parent_ranked_first(engine, gtzan_dir):
    analysis = engine.analyse(gtzan_dir / "disco" / "disco.00001.flac", top_k=3)
    ranked = [(g.name, g.parent) for g in analysis.genres]
    assert ("Disco", "R&B/Soul") in ranked
    assert ranked.index(("R&B/Soul", None)) < ranked.index(("Disco", "R&B/Soul"))
    assert analysis.probabilities["R&B/Soul"] >= analysis.probabilities["Disco"]
    assert analysis.to_json()["genres"][0] == {
        "name": "R&B/Soul",
        "parent": None,
        "confidence": round(analysis.genres[0].confidence, 4),
    }
