"""What the engine says about one track: the verdict, its timeline and its embedding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class GenreScore:
    name: str
    confidence: float
    parent: str | None = None  # the genre a style belongs to (a style implies it); None: top-level


@dataclass(frozen=True)
class StyleScore:
    name: str
    score: float


@dataclass(frozen=True)
class Chunk:
    """One analysed 3-second chunk: where it starts and every genre's probability."""

    start: float
    probabilities: dict[str, float]


@dataclass
class Analysis:
    path: str
    genres: list[GenreScore]  # ranked, best first, at most top_k
    probabilities: dict[str, float]  # every genre of the head, averaged over the chunks
    styles: list[StyleScore]  # the MSD model's genre-like tags, best first
    chunks: int  # how many chunks voted
    duration: float  # seconds
    model: str  # model version, e.g. "musicnn-msd+gtzan-head-3f2a9c1e"
    uncertain: bool  # best confidence below the threshold
    timeline: list[Chunk] = field(default_factory=list)
    embedding: np.ndarray | None = None  # mean of the chunks' 200-d penultimate features
    min_confidence: float = 0.35  # the threshold `uncertain` was judged against
    # How the head spells each genre in a file's tags (its taxonomy); the name where absent.
    tag_spelling: dict[str, str] = field(default_factory=dict)
    # What the file's decoding had to put up with (e.g. junk after the audio), for a person.
    warnings: list[str] = field(default_factory=list)

    @property
    def primary(self) -> str | None:
        """The genre to act on, or None where the verdict is uncertain."""
        return None if self.uncertain or not self.genres else self.genres[0].name

    def tag_values(self) -> list[str]:
        """The genres to write into the file, spelled for tags; none when uncertain."""
        if self.uncertain:
            return []
        return [
            self.tag_spelling.get(g.name, g.name)
            for g in self.genres
            if g.confidence >= self.min_confidence
        ]

    def to_json(self) -> dict[str, Any]:
        """The `classify --json` line: the fields issue-facing tools rely on."""
        return {
            "path": self.path,
            "genres": [
                {"name": g.name, "parent": g.parent, "confidence": round(g.confidence, 4)}
                for g in self.genres
            ],
            "styles": [{"name": s.name, "score": round(s.score, 4)} for s in self.styles],
            "chunks": self.chunks,
            "duration": round(self.duration, 3),
            "model": self.model,
            "uncertain": self.uncertain,
            "warnings": list(self.warnings),
            "error": None,
        }
