"""Training and judging genre heads: labelled folders, artist-aware folds, metrics, model cards.

Used by `manage.py train_head` and by the training runs started from the admin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.engine.config import AUDIO_SUFFIXES
from classifier.engine.head import Classifies, TrainConfig, track_probabilities
from classifier.engine.headnet import TrainableHead, train_head


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    genre: str
    group: str  # files of one group (artist) stay on one side of a split


def labelled_folder(root: Path) -> list[LabelledFile]:
    """Every audio file under root/<genre>/, with its genre; grouped by artist where known."""
    items = []
    for genre_dir in sorted(p for p in Path(root).iterdir() if p.is_dir()):
        files = sorted(
            f for f in genre_dir.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
        )
        items += [
            LabelledFile(f, genre_dir.name, f"{genre_dir.name}/{f.parent.name}") for f in files
        ]
    return items


def clip_number(path: Path) -> int | None:
    """GTZAN-style numbering (blues.00042.wav -> 42); None when the name has no number."""
    match = re.search(r"(\d+)(?=\.[^.]+$)", path.name)
    return int(match.group(1)) if match else None


def contiguous_folds(items: Sequence[LabelledFile], n_folds: int) -> list[int]:
    """A fold per file: each genre's files, in number order, cut into n_folds contiguous blocks.

    In GTZAN, clips with nearby numbers often share an artist, so contiguous blocks keep an
    artist's clips together as far as the numbering allows (only block edges can split one).
    """
    fold = [0] * len(items)
    for genre in sorted({item.genre for item in items}):
        members = [i for i, item in enumerate(items) if item.genre == genre]
        members.sort(key=lambda i: (clip_number(items[i].path) or 0, items[i].path.name))
        for block, chunk in enumerate(np.array_split(np.array(members), n_folds)):
            for i in chunk:
                fold[int(i)] = block
    return fold


def fit(
    chunk_features: Sequence[np.ndarray], labels: Sequence[int], n_genres: int, config: TrainConfig
) -> TrainableHead:
    """Train on every chunk of the given tracks, each chunk labelled with its track's genre."""
    x = np.concatenate(chunk_features)
    y = np.concatenate(
        [np.full(len(f), label) for f, label in zip(chunk_features, labels, strict=True)]
    )
    return train_head(x, y, n_genres, config)


@dataclass
class Evaluation:
    genres: list[str]
    confusion: np.ndarray  # rows: true genre, columns: predicted genre (track counts)

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def per_genre(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support of every genre."""
        c = self.confusion.astype(float)
        result = {}
        for i, genre in enumerate(self.genres):
            precision = c[i, i] / c[:, i].sum() if c[:, i].sum() else 0.0
            recall = c[i, i] / c[i].sum() if c[i].sum() else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            result[genre] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(c[i].sum()),
            }
        return result


def evaluate(
    head: Classifies, chunk_features: Sequence[np.ndarray], labels: Sequence[int], genres: list[str]
) -> Evaluation:
    predicted = track_probabilities(head, list(chunk_features)).argmax(1)
    confusion = np.zeros((len(genres), len(genres)), dtype=int)
    for true, pred in zip(labels, predicted, strict=True):
        confusion[true, pred] += 1
    return Evaluation(genres, confusion)


def cross_validate(
    chunk_features: Sequence[np.ndarray],
    labels: Sequence[int],
    folds: Sequence[int],
    genres: list[str],
    config: TrainConfig,
    on_fold: Callable[[int, int], object] | None = None,
) -> Evaluation:
    """Out-of-fold track predictions summed into one confusion matrix."""
    n_folds = max(folds) + 1
    confusion = np.zeros((len(genres), len(genres)), dtype=int)
    for k in range(n_folds):
        train = [i for i, f in enumerate(folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        head = fit(
            [chunk_features[i] for i in train], [labels[i] for i in train], len(genres), config
        )
        confusion += evaluate(
            head, [chunk_features[i] for i in test], [labels[i] for i in test], genres
        ).confusion
        if on_fold:
            on_fold(k + 1, n_folds)
    return Evaluation(genres, confusion)


def confusion_png(evaluation: Evaluation, path: Path, title: str) -> Path:
    """Draw the confusion matrix as a PNG (counts in cells, true genres as rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    genres, c = evaluation.genres, evaluation.confusion
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(genres), 0.8 + 0.55 * len(genres)), dpi=110)
    ax.imshow(c, cmap="Blues")
    ax.set_xticks(range(len(genres)), genres, rotation=45, ha="right")
    ax.set_yticks(range(len(genres)), genres)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {evaluation.accuracy:.1%}")
    for i in range(len(genres)):
        for j in range(len(genres)):
            if c[i, j]:
                ax.text(
                    j,
                    i,
                    str(c[i, j]),
                    ha="center",
                    va="center",
                    color="white" if c[i, j] > c.max() / 2 else "black",
                )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
