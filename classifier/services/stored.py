"""How an engine analysis is stored: the one mapping from an Analysis to model fields.

Tracks, catalog tracks and dataset samples keep the same verdict shape, so the pages, the
API and the review list read one format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings

from classifier.engine.analysis import Analysis
from classifier.engine.config import TagChoice
from classifier.services import taxonomy


def rounded(probabilities: Mapping[str, float]) -> dict[str, float]:
    """Probabilities as stored: four decimals are more than a person or a ranking needs."""
    return {genre: round(float(p), 4) for genre, p in probabilities.items()}


def analysis_fields(
    analysis: Analysis, spellings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The fields every stored analysis has (tracks and catalog tracks); `spellings`: the
    curated tag spellings where the caller already has them (one lookup for many tracks)."""
    verdict = analysis.to_json()
    verdict.pop("path", None)
    verdict.pop("error", None)
    verdict["probabilities"] = rounded(analysis.probabilities)
    # Staff may respell a genre in the genre table: files get the curated spelling.
    if spellings is None:
        spellings = taxonomy.tag_spellings()
    analysis.tag_spelling = {**analysis.tag_spelling, **spellings}
    verdict["tag_values"] = analysis.tag_values(tag_choice())
    verdict["min_confidence"] = analysis.min_confidence
    embedding = analysis.embedding
    return {
        "verdict": verdict,
        "embedding": None if embedding is None else [float(x) for x in embedding],
        "model_version": analysis.model,
        "primary_genre": analysis.primary or "",
        "confidence": analysis.genres[0].confidence if analysis.genres else None,
        "uncertain": analysis.uncertain,
    }


def tag_choice() -> TagChoice:
    """The site's tag settings (GENREWEB_TAG_*)."""
    return TagChoice(
        styles=settings.GENREWEB_TAG_STYLES,
        max_count=settings.GENREWEB_TAG_MAX,
        min_confidence=settings.GENREWEB_TAG_MIN_CONFIDENCE,
    )


def genre_index(analysis: Analysis) -> str:
    """The track's genres as the library filter matches them: "|Electronic|House|"."""
    if analysis.uncertain:
        return ""
    passing = {g for g, p in analysis.probabilities.items() if p >= analysis.min_confidence}
    passing |= {analysis.parents[g] for g in passing if g in analysis.parents}
    ranked = sorted(passing, key=lambda g: -analysis.probabilities.get(g, 1.0))
    return "|" + "|".join(ranked) + "|" if ranked else ""


def track_fields(analysis: Analysis) -> dict[str, Any]:
    """A library track's fields: the analysis, its duration and its per-chunk timeline."""
    return {
        **analysis_fields(analysis),
        "genre_index": genre_index(analysis),
        "duration": analysis.duration,
        "timeline": timeline(analysis),
    }


def timeline(analysis: Analysis) -> list[dict[str, Any]]:
    return [
        {"start": round(chunk.start, 3), "probabilities": rounded(chunk.probabilities)}
        for chunk in analysis.timeline
    ]


def probabilities_of(genres: Iterable[str], values: Iterable[float]) -> dict[str, float]:
    """A head's output row as stored: genre name to rounded probability."""
    return rounded(dict(zip(genres, values, strict=True)))
