"""`train-head`: train a genre head on a labelled folder, cross-validate it, write its card.

The run behind `python -m classifier.engine train-head` and `manage.py train_head`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from classifier.engine.errors import EngineError, unexpected_error
from classifier.engine.head import HeadInfo, TrainConfig, save_head
from classifier.engine.runner import Engine, EngineConfig
from classifier.engine.taxonomy import load_taxonomy
from classifier.engine.training import (
    Evaluation,
    LabelledFile,
    confusion_png,
    contiguous_folds,
    cross_validate,
    fit,
    labelled_folder,
)

log = logging.getLogger(__name__)


class TrainingError(EngineError):
    """The folder cannot train a head; the message says why."""


def train_from_folder(
    root: Path,
    out_path: Path,
    options: dict[str, Any],
    config: EngineConfig,
    out: TextIO,
    err: TextIO,
) -> str:
    """Train on `root`/<genre>/*, write the head to `out_path`; returns its version."""
    if not root.is_dir():
        raise TrainingError(f"{root} is not a folder")
    items = labelled_folder(root)
    genres = sorted({item.genre for item in items})
    if len(genres) < 2:
        raise TrainingError(f"{root} needs at least two genre subfolders with audio files")
    train_config = TrainConfig(
        epochs=options["epochs"], hidden=options["hidden"], weight_decay=options["weight_decay"]
    )
    engine = Engine.cnn_only(config)
    features, items = embed_all(engine, items, options["feature"], err)
    labels = [genres.index(item.genre) for item in items]
    folds = contiguous_folds(items, options["folds"])
    cv = cross_validate(
        features,
        labels,
        folds,
        genres,
        train_config,
        on_fold=lambda k, n: err.write(f"fold {k}/{n} done\n"),
    )
    out.write(f"cross-validated accuracy ({options['folds']} folds): {cv.accuracy:.3f}\n")
    head = fit(features, labels, len(genres), train_config)
    info = HeadInfo(
        genres=genres,
        feature=options["feature"],
        hidden=options["hidden"],
        trained_on=root.name,
        notes=_notes(items, cv, train_config, options),
        tag_spelling={g: load_taxonomy().tag_spelling_for(g) for g in genres},
    )
    version = save_head(head, info, out_path)
    out.write(f"wrote {out_path} (head version {version})\n")
    if options["card"]:
        write_card(out_path.parent, info, cv, version, engine.model)
        out.write(f"wrote {out_path.parent / 'MODEL_CARD.md'} and confusion.png\n")
    return version


def embed_all(
    engine: Engine, items: list[LabelledFile], feature: str, err: TextIO
) -> tuple[list[np.ndarray], list[LabelledFile]]:
    """Every file's chunk features; a file that fails is reported and left out."""
    features, kept = [], []
    for n, item in enumerate(items, 1):
        try:
            features.append(engine.embed(item.path, full=True, feature=feature).features)
            kept.append(item)
        except EngineError as exc:
            err.write(f"{item.path}: skipped: {exc}\n")
        except Exception as exc:  # one file's unforeseen failure must not end the run
            err.write(f"{item.path}: skipped: {unexpected_error(log, item.path.name, exc)}\n")
        if sys.stderr.isatty() or n % 10 == 0 or n == len(items):
            err.write(f"embedded {n}/{len(items)}\n")
    return features, kept


def _notes(
    items: list[LabelledFile], cv: Evaluation, config: TrainConfig, options: dict[str, Any]
) -> dict[str, Any]:
    return {
        "tracks": len(items),
        "folds": options["folds"],
        "cv_accuracy": cv.accuracy,
        "epochs": config.epochs,
        "weight_decay": config.weight_decay,
        "confusion": cv.confusion.tolist(),
    }


def write_card(folder: Path, info: HeadInfo, cv: Evaluation, version: str, cnn: str) -> None:
    confusion_png(cv, folder / "confusion.png", f"{info.trained_on}: cross-validated")
    rows = "\n".join(
        f"| {g} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} | {m['support']} |"
        for g, m in cv.per_genre().items()
    )
    card = CARD.format(
        version=version,
        cnn=cnn,
        trained_on=info.trained_on,
        tracks=info.notes["tracks"],
        genres=", ".join(info.genres),
        feature=info.feature,
        hidden=info.hidden or "none (linear)",
        epochs=info.notes["epochs"],
        wd=info.notes["weight_decay"],
        folds=info.notes["folds"],
        accuracy=cv.accuracy,
        rows=rows,
    )
    (folder / "MODEL_CARD.md").write_text(card)


CARD = """# Model card: default genre head `{version}`

**What it is.** A genre classifier on top of the pretrained musicnn MSD CNN (`{cnn}`, weights
converted from the `musicnn==0.1.0` wheel; Pons and Serra, ISC licence). The CNN is frozen; only
this head was trained. Each 3-second chunk's `{feature}` features go through the head;
a track's verdict is the mean of its chunks' probabilities.

**Trained on.** `{trained_on}`: {tracks} clips of 30 s, genres {genres}. Every chunk of every clip
(10 per clip) is a training example labelled with its clip's genre.

**Head.** Standardised input, hidden layer: {hidden}; AdamW, full batch, {epochs} epochs, weight
decay {wd}, class-balanced cross-entropy. Reproduce with
`python -m classifier.engine train-head ../shared/data/gtzan_mini --card
--out classifier/engine/bundled/genre_head.safetensors`.

**Cross-validated accuracy: {accuracy:.1%}** (track level, {folds} folds). Folds keep clips of
one artist together as far as the file numbering allows: in GTZAN, nearby clip numbers often
share an artist, so each genre's clips, in number order, are cut into {folds} contiguous blocks
and block *k* of every genre forms fold *k*. Each clip is predicted by a head that never saw it.
With 7 clips per genre this figure is noisy (one clip is 1.4 points).

![confusion matrix](confusion.png)

| genre | precision | recall | F1 | clips |
|---|---|---|---|---|
{rows}

**Limits.** Ten GTZAN genres only; GTZAN has known faults (repeated clips, mislabels,
distortions) and its clips are 2000s-era radio quality. Music outside these genres is forced
into one of them: the verdict says "uncertain" below the confidence threshold instead.
"""
