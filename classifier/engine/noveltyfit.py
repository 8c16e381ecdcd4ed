"""Fitting the bundled novelty model on the shared labelled music, judged by artist-disjoint
cross-validation (how much real music it would wrongly call novel), and its report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TextIO

from classifier.engine import novelty
from classifier.engine.datasets import all_sources
from classifier.engine.featurecache import clip_outputs
from classifier.engine.multilabel import artist_folds
from classifier.engine.runner import Engine, EngineConfig


def train_novelty(
    shared: Path, target: Path, cache: Path, config: EngineConfig, out: TextIO, folds: int = 5
) -> dict[str, object]:
    """Fit on every clip of the shared sources, write `target`, return what was measured."""
    clips = all_sources(shared)
    if not clips:
        raise FileNotFoundError(f"no labelled clips under {shared}/data")
    engine = Engine.cnn_only(config)
    features = [clip_outputs(engine, clip.path, cache).penultimate for clip in clips]
    flags = novelty.cross_validated_flags(features, artist_folds(clips, folds))
    per_source = Counter(clip.source for clip in clips)
    flagged = Counter(clip.source for clip, flag in zip(clips, flags, strict=True) if flag)
    per_source_rate = {s: round(flagged[s] / n, 4) for s, n in sorted(per_source.items())}
    about: dict[str, object] = {
        "clips": len(clips),
        "components": novelty.COMPONENTS,
        "quantile": novelty.QUANTILE,
        "cv_music_flagged": round(float(flags.mean()), 4),
        "cv_music_flagged_per_source": per_source_rate,
    }
    novelty.save(novelty.fit(features), target, about)
    out.write(
        f"novelty model: {len(clips)} clips; music wrongly flagged novel under "
        f"{folds}-fold artist-disjoint CV: {flags.mean():.1%} "
        + ", ".join(f"{s} {v:.1%}" for s, v in per_source_rate.items())
        + f"\nwritten to {target}\n"
    )
    return about
