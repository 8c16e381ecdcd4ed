"""Whether a track sounds like music the genre head learned from: a novelty score.

A head trained only on music gives every input a genre, noise and test tones included
(white noise came out Electronic at 93%). So the engine also measures how far a track's CNN
features lie from the training music's: a Gaussian over the chunks' penultimate features,
exact in its leading principal directions and isotropic in the rest (probabilistic PCA), and
a track's score is its chunks' mean distance over the threshold, the distance that only a
small share of the training clips exceed. A score above 1 makes the verdict uncertain.

It depends on the CNN only, not on any head: every head of the same CNN shares it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from classifier.engine.errors import ModelError
from classifier.engine.files import atomic_write

COMPONENTS = 20  # measured by cross-validation: see fit_and_measure's report
QUANTILE = 0.995  # share of the training clips below the threshold


@dataclass(frozen=True)
class NoveltyModel:
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,) per-feature standard deviation
    components: np.ndarray  # (k, D) leading principal directions of the scaled features
    variances: np.ndarray  # (k,) their variances
    residual: float  # mean variance of the other directions
    threshold: float  # a clip's mean distance above this is novel

    def distances(self, chunks: np.ndarray) -> np.ndarray:
        """Each chunk's squared distance per dimension (about 1 for typical training music)."""
        scaled = (chunks - self.mean) / self.scale
        along = scaled @ self.components.T
        rest = scaled - along @ self.components
        total = np.sum(along**2 / self.variances, axis=1) + np.sum(rest**2, axis=1) / self.residual
        return np.asarray(total / self.mean.shape[0])

    def score(self, chunks: np.ndarray) -> float:
        """The clip's novelty: its chunks' mean distance over the threshold (above 1: novel)."""
        return float(self.distances(chunks).mean() / self.threshold)


def fit(clips: Sequence[np.ndarray], components: int = COMPONENTS) -> NoveltyModel:
    """The novelty model of training clips (each a (chunks, D) array of CNN features)."""
    rows = np.concatenate(list(clips)).astype(np.float64)
    mean = rows.mean(0)
    scale = rows.std(0) + 1e-6
    _, singular, directions = np.linalg.svd((rows - mean) / scale, full_matrices=False)
    variances = singular**2 / (len(rows) - 1)
    model = NoveltyModel(
        mean=mean,
        scale=scale,
        components=directions[:components],
        variances=variances[:components],
        residual=float(variances[components:].mean()),
        threshold=1.0,
    )
    scores = [model.distances(clip.astype(np.float64)).mean() for clip in clips]
    return NoveltyModel(**{**model.__dict__, "threshold": float(np.quantile(scores, QUANTILE))})


def cross_validated_flags(
    clips: Sequence[np.ndarray], folds: Sequence[int], components: int = COMPONENTS
) -> np.ndarray:
    """Whether each clip is flagged novel by a model fitted without its fold (the false-flag
    rate on music the model never saw)."""
    folds_array = np.asarray(folds)
    flags = np.zeros(len(clips), dtype=bool)
    for fold in sorted(set(folds)):
        train = [c for c, f in zip(clips, folds_array, strict=True) if f != fold]
        model = fit(train, components)
        for i in np.flatnonzero(folds_array == fold):
            flags[i] = model.score(clips[int(i)]) > 1.0
    return flags


def save(model: NoveltyModel, path: Path, about: dict[str, object]) -> None:
    tensors = {
        "mean": model.mean.astype(np.float32),
        "scale": model.scale.astype(np.float32),
        "components": model.components.astype(np.float32),
        "variances": model.variances.astype(np.float32),
    }
    metadata = {
        "residual": repr(model.residual),
        "threshold": repr(model.threshold),
        "about": json.dumps(about, sort_keys=True),
    }
    with atomic_write(path, mode=0o644) as temp:
        save_file(tensors, str(temp), metadata)


def about(path: Path) -> dict[str, object]:
    """What the model file says of its fitting (clips, components, the CV false-flag rates)."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            found: dict[str, object] = json.loads((handle.metadata() or {}).get("about", "{}"))
    except (OSError, SafetensorError, ValueError) as exc:
        raise ModelError(f"cannot read the novelty model {path.name}: {exc}") from None
    return found


def load(path: Path) -> NoveltyModel:
    """The model saved at `path`; ModelError when the file is unreadable or incomplete."""
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        return NoveltyModel(
            mean=tensors["mean"].astype(np.float64),
            scale=tensors["scale"].astype(np.float64),
            components=tensors["components"].astype(np.float64),
            variances=tensors["variances"].astype(np.float64),
            residual=float(metadata["residual"]),
            threshold=float(metadata["threshold"]),
        )
    except (OSError, SafetensorError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read the novelty model {path.name}: {exc}") from None
