"""The active model's verdict on each sample, stored so the review list can sort by it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import numpy as np

from classifier.curation.models import Sample, disagreement
from classifier.curation.services.embeddings import cached_features, sample_features
from classifier.engine.errors import EngineError, unexpected_error
from classifier.services.active_model import active_engine
from classifier.services.stored import probabilities_of

VERDICT_FIELDS = [
    "verdict_genre",
    "verdict_confidence",
    "disagreement",
    "uncertainty",
    "verdict_probabilities",
    "verdict_model",
    "verdict_multi_label",
    "verdict_error",
]

log = logging.getLogger(__name__)


def refresh_verdicts(
    samples: Iterable[Sample],
    *,
    embed_missing: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Judge each sample with the active head; returns how many got a verdict.

    Samples whose audio was never analysed are analysed now (embed_missing) or left as they
    are. The engine is asked for the active head here, so a promotion is picked up at once.
    """
    engine = active_engine()
    samples = list(samples)
    judged = 0
    for n, sample in enumerate(samples, 1):
        try:
            if embed_missing:
                features = sample_features(sample, engine.info.feature)
            else:
                features = cached_features(sample, engine.info.feature)
        except EngineError as exc:
            _store_error(sample, str(exc))
            features = None
        except Exception as exc:  # one sample's unforeseen failure must not end the run
            _store_error(sample, unexpected_error(log, str(sample), exc))
            features = None
        if features is not None:
            judge(
                sample,
                engine.probabilities(features).mean(0),
                engine.info.genres,
                engine.model,
                multi_label=engine.info.activation == "sigmoid",
            )
            judged += 1
        if on_progress:
            on_progress(n, len(samples))
    return judged


def judge(
    sample: Sample,
    probabilities: np.ndarray,
    genres: list[str],
    model: str,
    *,
    multi_label: bool = False,
) -> None:
    best = int(np.argmax(probabilities))
    sample.verdict_genre = genres[best]
    sample.verdict_confidence = float(probabilities[best])
    sample.verdict_probabilities = probabilities_of(genres, probabilities)
    sample.verdict_multi_label = multi_label
    sample.disagreement = disagreement(
        sample.verdict_probabilities, sample.genre_names(), multi_label
    )
    sample.uncertainty = 1.0 - float(probabilities[best])
    sample.verdict_model = model
    sample.verdict_error = ""
    Sample.objects.filter(pk=sample.pk).update(**{f: getattr(sample, f) for f in VERDICT_FIELDS})


def _store_error(sample: Sample, message: str) -> None:
    sample.verdict_error = message[:500]
    Sample.objects.filter(pk=sample.pk).update(verdict_error=sample.verdict_error)
