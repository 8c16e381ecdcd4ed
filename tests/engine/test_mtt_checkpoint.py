"""The wheel's MTT_musicnn checkpoint (bench/second_view.py's second view): pinned, and read by
the engine's own reader into the MSD architecture."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from classifier.engine import registry
from classifier.engine.checkpoint import read_checkpoint
from classifier.engine.files import sha256_of
from classifier.engine.musicnn import N_TAGS

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.second_view import load_mtt, mtt_checkpoint_dir  # noqa: E402


def test_mtt_checkpoint_is_the_pinned_one():
    folder = mtt_checkpoint_dir()
    assert {s: sha256_of(folder / s) for s in registry.MTT_SHA256} == registry.MTT_SHA256


def test_mtt_has_msd_architecture_and_other_weights():
    mtt = read_checkpoint(mtt_checkpoint_dir())
    msd = read_checkpoint(registry.checkpoint_dir())
    assert {k: v.shape for k, v in mtt.items()} == {k: v.shape for k, v in msd.items()}
    assert not np.allclose(mtt["dense_1/kernel"], msd["dense_1/kernel"])
    model = load_mtt()
    assert model.output.weight.shape[-1] == N_TAGS
