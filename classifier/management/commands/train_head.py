"""`manage.py train_head DIR`: train a genre head on a labelled folder (one subfolder per genre)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier.errors import EngineError
from classifier.head import HeadInfo, TrainConfig, save_head
from classifier.labels import TAG_SPELLING
from classifier.registry import BUNDLED_DIR
from classifier.training import (
    LabelledFile,
    confusion_png,
    contiguous_folds,
    cross_validate,
    fit,
    labelled_folder,
)


class Command(BaseCommand):
    help = "Train a genre head on DIR/<genre>/*.audio, cross-validate it and write a model card."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR")
        parser.add_argument("--out", type=Path, default=None,
                            help="head file to write (default: the models folder)")
        parser.add_argument("--feature", default="penultimate",
                            help="CNN outputs the head reads, joined by '+' "
                                 "(penultimate, taggram, max_pool, mean_pool)")
        parser.add_argument("--folds", type=int, default=3)
        parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
        parser.add_argument("--hidden", type=int, default=0, help="hidden units (0: linear)")
        parser.add_argument("--weight-decay", type=float, default=TrainConfig.weight_decay)
        parser.add_argument("--card", action="store_true",
                            help="write MODEL_CARD.md and confusion.png beside the head")

    def handle(self, *args, **options) -> None:
        from classifier.analysis import Engine

        root = Path(options["directory"])
        if not root.is_dir():
            raise CommandError(f"{root} is not a folder")
        items = labelled_folder(root)
        genres = sorted({item.genre for item in items})
        if len(genres) < 2:
            raise CommandError(f"{root} needs at least two genre subfolders with audio files")
        config = TrainConfig(epochs=options["epochs"], hidden=options["hidden"],
                             weight_decay=options["weight_decay"])
        engine = Engine.cnn_only()
        features, items = self.embed_all(engine, items, options["feature"])
        labels = [genres.index(item.genre) for item in items]
        folds = contiguous_folds(items, options["folds"])
        cv = cross_validate(features, labels, folds, genres, config,
                            on_fold=lambda k, n: self.stderr.write(f"fold {k}/{n} done"))
        self.stdout.write(f"cross-validated accuracy ({options['folds']} folds): {cv.accuracy:.3f}")
        head = fit(features, labels, len(genres), config)
        info = HeadInfo(genres=genres, feature=options["feature"], hidden=options["hidden"],
                        trained_on=root.name, notes=self.notes(items, cv, config, options),
                        tag_spelling={g: TAG_SPELLING.get(g, g.title()) for g in genres})
        out = options["out"] or (BUNDLED_DIR / "genre_head.safetensors")
        version = save_head(head, info, out)
        self.stdout.write(f"wrote {out} (head version {version})")
        if options["card"]:
            self.write_card(out.parent, info, cv, version, engine.model)

    def embed_all(self, engine, items: list[LabelledFile], feature: str
                  ) -> tuple[list[np.ndarray], list[LabelledFile]]:
        features, kept = [], []
        for n, item in enumerate(items, 1):
            try:
                features.append(engine.embed(item.path, full=True, feature=feature).features)
                kept.append(item)
            except EngineError as exc:
                self.stderr.write(f"{item.path}: skipped: {exc}")
            if sys.stderr.isatty() or n % 10 == 0 or n == len(items):
                self.stderr.write(f"embedded {n}/{len(items)}")
        return features, kept

    def notes(self, items, cv, config: TrainConfig, options: dict) -> dict:
        return {"tracks": len(items), "folds": options["folds"], "cv_accuracy": cv.accuracy,
                "epochs": config.epochs, "weight_decay": config.weight_decay,
                "confusion": cv.confusion.tolist()}

    def write_card(self, folder: Path, info: HeadInfo, cv, version: str, cnn: str) -> None:
        confusion_png(cv, folder / "confusion.png", f"{info.trained_on}: cross-validated")
        rows = "\n".join(f"| {g} | {m['precision']:.2f} | {m['recall']:.2f} | {m['f1']:.2f} "
                         f"| {m['support']} |" for g, m in cv.per_genre().items())
        card = CARD.format(version=version, cnn=cnn, trained_on=info.trained_on,
                           tracks=info.notes["tracks"], genres=", ".join(info.genres),
                           feature=info.feature, hidden=info.hidden or "none (linear)",
                           epochs=info.notes["epochs"], wd=info.notes["weight_decay"],
                           folds=info.notes["folds"], accuracy=cv.accuracy, rows=rows)
        (folder / "MODEL_CARD.md").write_text(card)
        self.stdout.write(f"wrote {folder / 'MODEL_CARD.md'} and confusion.png")


CARD = """# Model card: default genre head `{version}`

**What it is.** A genre classifier on top of the pretrained musicnn MSD CNN (`{cnn}`, weights
converted from the `musicnn==0.1.0` wheel; Pons and Serra, ISC licence). The CNN is frozen; only
this head was trained. Each 3-second chunk's `{feature}` features go through the head;
a track's verdict is the mean of its chunks' probabilities.

**Trained on.** `{trained_on}`: {tracks} clips of 30 s, genres {genres}. Every chunk of every clip
(10 per clip) is a training example labelled with its clip's genre.

**Head.** Standardised input, hidden layer: {hidden}; AdamW, full batch, {epochs} epochs, weight
decay {wd}, class-balanced cross-entropy. Reproduce with
`python manage.py train_head ../shared/data/gtzan_mini --card`.

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
