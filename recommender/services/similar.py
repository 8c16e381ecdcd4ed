"""Songs like this: catalog tracks of the same primary genre, and the user's own tracks,
ranked by the cosine similarity of the engine's embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recommender.index import catalog_index, normalised
from recommender.models import CatalogTrack, Status

# Below this many analysed tracks of a genre the database itself is searched exactly when the
# index gives fewer than k usable hits (it may lag a worker that is still writing it).
DATABASE_EXACT_LIMIT = 1000
DONE = "done"  # classifier.models.Status.DONE


@dataclass
class Suggestion:
    item: Any  # a CatalogTrack or a classifier Track
    similarity: float  # cosine of the embeddings, -1..1
    genre: str  # the suggestion's primary genre
    shared_genre: bool

    @property
    def reason(self) -> str:
        genre = self.genre or "no clear genre"
        head = f"Same genre: {genre}" if self.shared_genre else f"Different genre: {genre}"
        return f"{head} · similarity {self.similarity:.2f}"


@dataclass
class Suggestions:
    genre: str  # the track's primary genre ('' if uncertain)
    items: list[Suggestion] = field(default_factory=list)
    message: str = ""  # why the list is empty, when it is

    def __bool__(self) -> bool:
        return bool(self.items)


def _query_vector(track: Any) -> np.ndarray | None:
    if not track.embedding:
        return None
    return normalised(np.asarray(track.embedding, dtype=np.float32))[0]


def _cosines(query: np.ndarray, embeddings: list[list[float]]) -> np.ndarray:
    if not embeddings:
        return np.empty(0, dtype=np.float32)
    return normalised(np.asarray(embeddings, dtype=np.float32)) @ query


def similar_catalog(track: Any, k: int = 10) -> Suggestions:
    """The k catalog tracks of `track`'s primary genre nearest to it by cosine similarity."""
    genre = track.primary_genre or ""
    query = _query_vector(track)
    if query is None:
        return Suggestions(genre, message="This track has not been analysed yet.")
    if not genre:
        return Suggestions(
            genre,
            message="The engine is not sure of this track's genre, so "
            "there is no genre to match in the catalog.",
        )
    in_genre = CatalogTrack.objects.filter(status=Status.ANALYSED, primary_genre=genre)
    hits = catalog_index().search(genre, query, 3 * k + 10)  # room for excluded tracks
    found = _rescore(query, in_genre.filter(pk__in=[pk for pk, _ in hits]))
    if len(found) < k:
        total = in_genre.count()
        if len(found) < total <= DATABASE_EXACT_LIMIT:
            found = _rescore(query, in_genre)
        elif total == 0:
            return Suggestions(genre, message=f"The catalog has no {genre} tracks yet.")
    return Suggestions(genre, items=[Suggestion(t, s, genre, True) for t, s in found[:k]])


def _rescore(query: np.ndarray, tracks: Any) -> list[tuple[CatalogTrack, float]]:
    """Exact cosines from the database's embeddings, best first (and ties by id)."""
    rows = [t for t in tracks.filter(embedding__isnull=False) if t.embedding]
    scores = _cosines(query, [t.embedding for t in rows])
    ranked = sorted(zip(rows, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0].pk))
    return [(t, float(s)) for t, s in ranked]


def similar_in_library(track: Any, k: int = 10) -> Suggestions:
    """The k analysed tracks of the same owner nearest to `track`, whatever their genre."""
    genre = track.primary_genre or ""
    query = _query_vector(track)
    if query is None:
        return Suggestions(genre, message="This track has not been analysed yet.")
    others = [
        t
        for t in type(track)
        .objects.filter(owner_id=track.owner_id, status=DONE)
        .exclude(pk=track.pk)
        .filter(embedding__isnull=False)
        if t.embedding
    ]
    if not others:
        return Suggestions(genre, message="No other analysed tracks in your library yet.")
    scores = _cosines(query, [t.embedding for t in others])
    ranked = sorted(zip(others, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0].pk))
    return Suggestions(
        genre,
        items=[
            Suggestion(t, float(s), t.primary_genre, bool(genre) and t.primary_genre == genre)
            for t, s in ranked[:k]
        ],
    )
