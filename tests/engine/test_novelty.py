"""Non-music comes out uncertain: the bundled novelty model on audio made in the test.

The head knows only music, so alone it names a genre for anything (white noise came out
Electronic at 93%); the novelty model, fitted on music only, says how far a track sounds
from it. Speech from espeak-ng, white noise and a sine sweep must come out uncertain with a
reason, and music must not.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from classifier.engine import novelty
from classifier.engine.errors import ModelError
from classifier.engine.registry import NOVELTY_MODEL
from classifier.engine.runner import NOVEL_WARNING, Engine
from tests.conftest import unavailable

RATE = 16_000
SECONDS = 12


@pytest.fixture(scope="module")
def engine(engine_config) -> Engine:
    """The engine as shipped: the novelty check on (the other tests' config has it off)."""
    return Engine(replace(engine_config, novelty_path=NOVELTY_MODEL))


def speech(folder: Path) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        unavailable("espeak-ng is not installed (make test installs it: apt-get install espeak-ng)")
    path = folder / "speech.wav"
    text = (
        "Good evening. The council met today to discuss the budget for the coming year, "
        "and several members asked about the cost of the new bridge across the river."
    )
    subprocess.run([str(espeak), "-v", "en", "-w", str(path), text], check=True)
    return path


def white_noise(folder: Path) -> Path:
    samples = np.random.default_rng(7).standard_normal(RATE * SECONDS) * 0.2
    return write(folder / "noise.wav", samples)


def sine_sweep(folder: Path) -> Path:
    t = np.arange(RATE * SECONDS) / RATE
    rate = np.log(8000 / 50) / SECONDS  # 50 Hz to 8 kHz, exponentially
    return write(folder / "sweep.wav", 0.5 * np.sin(2 * np.pi * 50 * (np.exp(rate * t) - 1) / rate))


def write(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples.astype(np.float32), RATE)
    return path


@pytest.mark.parametrize("make", [speech, white_noise, sine_sweep], ids=lambda f: f.__name__)
def test_non_music_comes_out_uncertain(engine, tmp_path, make):
    analysis = engine.analyse(make(tmp_path))
    assert analysis.novelty is not None and analysis.novelty > 1.0
    assert analysis.uncertain and analysis.primary is None
    assert NOVEL_WARNING in analysis.warnings
    assert analysis.tag_values() == []  # nothing is written into such a file
    assert analysis.to_json()["novelty"] == pytest.approx(analysis.novelty, abs=1e-3)


def test_music_is_not_flagged(engine, gtzan_dir):
    for genre in ("classical", "metal", "reggae"):
        analysis = engine.analyse(gtzan_dir / genre / f"{genre}.00003.flac")
        assert analysis.novelty is not None and analysis.novelty < 1.0, genre
        assert NOVEL_WARNING not in analysis.warnings


def test_distances_grow_away_from_the_training_features(tmp_path):
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((5, 12)) * [3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] for _ in range(60)]
    model = novelty.fit(clips, components=3)
    typical = np.mean([model.score(c) for c in clips])
    assert 0.5 < typical < 1.0  # the threshold sits above most training clips
    assert model.score(clips[0] + 8.0) > 5.0  # far from every training clip
    novelty.save(model, tmp_path / "n.safetensors", {"clips": 60})
    again = novelty.load(tmp_path / "n.safetensors")
    assert again.score(clips[1]) == pytest.approx(model.score(clips[1]), rel=1e-4)


def test_an_unreadable_model_is_a_clear_error(tmp_path):
    broken = tmp_path / "novelty.safetensors"
    broken.write_bytes(NOVELTY_MODEL.read_bytes()[:100])
    with pytest.raises(ModelError, match="novelty model"):
        novelty.load(broken)
