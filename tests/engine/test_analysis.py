"""The engine end to end: real audio in, a verdict out, with the bundled head."""

from __future__ import annotations

import numpy as np
import pytest

from classifier.engine.config import DEFAULT_CHUNK_BUDGET
from classifier.engine.head import read_head_info
from classifier.engine.labels import STYLE_TAGS
from classifier.engine.registry import DEFAULT_HEAD
from classifier.engine.runner import Engine, get_engine
from tests.audiofiles import make_audio_file, tone, write_audio

GENRES = tuple(read_head_info(DEFAULT_HEAD).genres)


@pytest.fixture(scope="module")
def engine(engine_config):
    return get_engine(engine_config)


def test_engine_loads_once_per_process(engine, engine_config):
    assert get_engine(engine_config) is engine


def test_verdict_on_a_real_clip(engine, gtzan_dir):
    # The bundled head saw this clip in training: this checks the wiring, not generalisation
    # (the model card's cross-validated accuracy is the honest figure for that).
    analysis = engine.analyse(gtzan_dir / "classical" / "classical.00001.flac", top_k=3)
    assert analysis.chunks == 10  # 30 s: ten whole 3-second patches
    assert analysis.duration == pytest.approx(30.0, abs=0.1)
    assert set(analysis.probabilities) == set(GENRES)
    # One probability per genre (a track can be several), each within 0..1.
    assert all(0.0 <= p <= 1.0 for p in analysis.probabilities.values())
    confidences = [g.confidence for g in analysis.genres]
    assert len(confidences) == 3 and confidences == sorted(confidences, reverse=True)
    assert analysis.genres[0].name == max(analysis.probabilities, key=analysis.probabilities.get)
    assert analysis.primary == "Classical"
    assert analysis.model.startswith("musicnn-msd-") and "+head-" in analysis.model
    assert analysis.embedding.shape == (200,)


def test_chunk_votes_are_averaged(engine, gtzan_dir):
    analysis = engine.analyse(gtzan_dir / "metal" / "metal.00002.flac")
    assert len(analysis.timeline) == analysis.chunks
    starts = [c.start for c in analysis.timeline]
    assert starts == sorted(starts) and starts[0] == 0.0
    for genre in GENRES:
        mean = np.mean([c.probabilities[genre] for c in analysis.timeline])
        assert analysis.probabilities[genre] == pytest.approx(mean, abs=1e-5)


def test_styles_are_msd_genre_tags_ranked(engine, gtzan_dir):
    analysis = engine.analyse(gtzan_dir / "metal" / "metal.00002.flac")
    names = [s.name for s in analysis.styles]
    assert names and set(names) <= set(STYLE_TAGS)
    scores = [s.score for s in analysis.styles]
    assert scores == sorted(scores, reverse=True)
    assert {"metal", "heavy metal", "hard rock", "rock"} & set(names[:3])


def test_budget_spreads_chunks_and_full_takes_all(engine, tmp_path):
    path = make_audio_file(tmp_path, "flac", seconds=90, sample_rate=16_000)
    default = engine.analyse(path)
    full = engine.analyse(path, full=True)
    assert default.chunks == DEFAULT_CHUNK_BUDGET
    assert full.chunks == 30
    assert default.timeline[-1].start > 80  # spread to the end, not the first 48 s


def test_silent_chunks_do_not_vote(engine, tmp_path):
    rate = 16_000
    music = tone(9.5, rate)
    samples = np.concatenate([np.zeros(rate * 12, dtype=np.float32), music])
    path = write_audio(tmp_path / "half_silent.wav", samples, rate, "wav")
    analysis = engine.analyse(path, full=True)
    assert analysis.chunks == 3  # the 4 silent patches are dropped, 3 of music remain
    assert all(c.start >= 11.9 for c in analysis.timeline)


def test_low_confidence_says_uncertain_instead_of_guessing(engine, gtzan_dir):
    clip = gtzan_dir / "jazz" / "jazz.00000.flac"
    sure = engine.analyse(clip, min_confidence=0.0)
    unsure = engine.analyse(clip, min_confidence=1.01)
    assert not sure.uncertain and sure.tag_values()
    assert unsure.uncertain and unsure.primary is None and unsure.tag_values() == []
    assert unsure.genres == sure.genres  # the ranking is still reported


def test_tag_values_use_the_tag_spelling(engine, gtzan_dir):
    analysis = engine.analyse(gtzan_dir / "hiphop" / "hiphop.00001.flac", min_confidence=0.0)
    assert analysis.tag_values()[0] == "Hip-Hop"


@pytest.mark.parametrize("clip", ["blues.00000", "classical.00001", "metal.00002"])
def test_track_taggram_from_audio_matches_original_musicnn(
    clip, gtzan_dir, reference_dir, engine_config
):
    """Decoding, resampling and the spectrogram as well as the CNN: the whole path from a file."""
    reference = np.load(reference_dir / f"{clip}.npz")
    clip_path = gtzan_dir / clip.split(".")[0] / f"{clip}.flac"
    outputs = Engine.cnn_only(engine_config).embed(clip_path, full=True)
    assert outputs.taggram.shape == reference["taggram"].shape
    error = np.abs(outputs.taggram.mean(0) - reference["taggram"].mean(0)).max()
    assert error < 0.02
