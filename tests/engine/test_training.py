"""Folds, metrics and heads: the training code on small real inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from classifier.engine.errors import ModelError
from classifier.engine.head import HeadInfo, TrainConfig, load_head, save_head
from classifier.engine.training import (
    Evaluation,
    LabelledFile,
    contiguous_folds,
    cross_validate,
    fit,
    labelled_folder,
)


def items(genre: str, numbers: list[int]) -> list[LabelledFile]:
    return [LabelledFile(Path(f"{genre}.{n:05d}.flac"), genre, genre) for n in numbers]


def test_contiguous_folds_keep_neighbouring_numbers_together():
    files = items("jazz", [7, 0, 1, 2, 4, 5, 6]) + items("rock", [3, 0, 1, 2, 6, 5, 4])
    folds = contiguous_folds(files, 3)
    for genre in ("jazz", "rock"):
        ordered = sorted(
            (f for f in zip(files, folds, strict=True) if f[0].genre == genre),
            key=lambda pair: pair[0].path.name,
        )
        sequence = [fold for _, fold in ordered]
        assert sequence == sorted(sequence)  # numbers ascend with the folds: blocks, no mixing
        assert set(sequence) == {0, 1, 2}


def test_every_fold_holds_every_genre():
    files = items("a", list(range(7))) + items("b", list(range(7))) + items("c", list(range(5)))
    folds = contiguous_folds(files, 3)
    for k in range(3):
        genres = {f.genre for f, fold in zip(files, folds, strict=True) if fold == k}
        assert genres == {"a", "b", "c"}


def test_per_genre_metrics_from_confusion():
    evaluation = Evaluation(["a", "b"], np.array([[3, 1], [0, 4]]))
    assert evaluation.accuracy == pytest.approx(7 / 8)
    metrics = evaluation.per_genre()
    assert metrics["a"]["precision"] == pytest.approx(1.0)
    assert metrics["a"]["recall"] == pytest.approx(0.75)
    assert metrics["b"]["precision"] == pytest.approx(0.8)
    assert metrics["b"]["f1"] == pytest.approx(2 * 0.8 * 1.0 / 1.8)
    assert metrics["b"]["support"] == 4


def separable_tracks(rng, n_per_genre=6, chunks=5, dim=20):
    centres = rng.normal(0, 3, size=(3, dim))
    features, labels = [], []
    for g in range(3):
        for _ in range(n_per_genre):
            features.append(centres[g] + rng.normal(0, 1, size=(chunks, dim)))
            labels.append(g)
    return features, labels


def test_head_learns_and_cross_validates_separable_data():
    rng = np.random.default_rng(1)
    features, labels = separable_tracks(rng)
    folds = [i % 3 for i in range(len(labels))]
    cv = cross_validate(features, labels, folds, ["x", "y", "z"], TrainConfig(epochs=150))
    assert cv.confusion.sum() == len(labels)
    assert cv.accuracy > 0.9
    shuffled = list(rng.permutation(labels))
    chance = cross_validate(features, shuffled, folds, ["x", "y", "z"], TrainConfig(epochs=150))
    assert chance.accuracy < cv.accuracy


def test_head_round_trips_through_safetensors(tmp_path):
    rng = np.random.default_rng(2)
    features, labels = separable_tracks(rng)
    head = fit(features, labels, 3, TrainConfig(epochs=50))
    info = HeadInfo(genres=["x", "y", "z"], tag_spelling={"x": "X-Ray"}, trained_on="synthetic")
    version = save_head(head, info, tmp_path / "head.safetensors")
    loaded, loaded_info, loaded_version = load_head(tmp_path / "head.safetensors")
    assert loaded_version == version and len(version) == 8
    assert loaded_info == info
    x = np.concatenate(features)
    np.testing.assert_allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)


def test_missing_or_damaged_head_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_head(tmp_path / "nope.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelError, match="damaged"):
        load_head(broken)


def test_labelled_folder_reads_genre_subfolders(tmp_path):
    for genre in ("jazz", "rock"):
        (tmp_path / genre).mkdir()
        (tmp_path / genre / f"{genre}.00001.flac").write_bytes(b"x")
        (tmp_path / genre / "cover.jpg").write_bytes(b"x")
    found = labelled_folder(tmp_path)
    assert [(f.genre, f.path.name) for f in found] == [
        ("jazz", "jazz.00001.flac"),
        ("rock", "rock.00001.flac"),
    ]
