"""What the engine says about one track: the verdict, its timeline and its embedding."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from classifier.engine.config import TagChoice

if TYPE_CHECKING:
    from classifier.engine.evidence import TrackEvidence


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
    parents: dict[str, str] = field(default_factory=dict)  # style -> its top-level genre
    # How far the track sounds from the training music (novelty.py; above 1: not like
    # it, the verdict is uncertain); None where no novelty model was loaded.
    novelty: float | None = None
    # What the file's own tags say, read in the same open as its audio; None: not read.
    evidence: TrackEvidence | None = None

    @property
    def primary(self) -> str | None:
        """The genre to act on, or None where the verdict is uncertain."""
        return None if self.uncertain or not self.genres else self.genres[0].name

    def tag_values(self, choice: TagChoice | None = None) -> list[str]:
        """The genres to write into the file, spelled for tags; none when uncertain.

        Every genre at or above the threshold, best first, each top-level genre followed by
        its styles when the choice asks for styles; a style whose parent fell short brings
        the parent along (a style implies it)."""
        choice = choice or TagChoice()
        if self.uncertain:
            return []
        threshold = self.min_confidence if choice.min_confidence is None else choice.min_confidence
        passing = [
            g for g, p in sorted(self.probabilities.items(), key=lambda i: -i[1]) if p >= threshold
        ]
        if not passing:  # an older verdict without every probability: its ranked genres
            passing = [g.name for g in self.genres if g.confidence >= threshold]
        names: list[str] = []
        for genre in passing:
            top = self.parents.get(genre, genre)
            if top not in names:
                names.append(top)
        if choice.styles:
            names = [n for top in names for n in [top, *self._styles_of(top, passing)]]
        return [self.tag_spelling.get(n, n) for n in names[: choice.max_count]]

    def _styles_of(self, top: str, passing: list[str]) -> list[str]:
        return [g for g in passing if self.parents.get(g) == top]

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
            "novelty": None if self.novelty is None else round(self.novelty, 3),
            "warnings": list(self.warnings),
            "error": None,
        }
