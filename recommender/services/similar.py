"""Songs like this: catalog tracks of the same primary genre, and the user's own tracks,
ranked by the cosine similarity of the engine's embeddings.

The user's own tracks are searched through an index like the catalog's (one partition per
user, recommender.index.library_index), brought up to date when it is asked: the tracks
analysed since it last was are added (a re-analysed track's new row wins), and a track
deleted or no longer analysed is dropped when the hits are read back from the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db.models import Count, Max

from classifier.engine.files import atomic_write
from recommender.index import (
    DIM,
    GenreIndex,
    catalog_index,
    file_lock,
    library_index,
    normalised,
)
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
    analysed = type(track).objects.filter(owner_id=track.owner_id, status=DONE)
    others = analysed.exclude(pk=track.pk)
    index = library_index(track.owner_id)
    total = sync_library_index(analysed, index)
    found = _rescore(query, others.filter(pk__in=[pk for pk, _ in index.search(query, 3 * k + 10)]))
    if len(found) < min(k, total - 1):  # hits of tracks deleted or no longer analysed
        if total <= DATABASE_EXACT_LIMIT:
            found = _rescore(query, others)
        else:
            rebuild_library_index(analysed, index)
            hits = index.search(query, 3 * k + 10)
            found = _rescore(query, others.filter(pk__in=[pk for pk, _ in hits]))
    if not found:
        return Suggestions(genre, message="No other analysed tracks in your library yet.")
    return Suggestions(
        genre,
        items=[
            Suggestion(t, s, t.primary_genre, bool(genre) and t.primary_genre == genre)
            for t, s in found[:k]
        ],
    )


# ---------------------------------------------------------------- the library's index

SYNC_BATCH = 5000
_STATE = "synced.json"  # what the partition holds: {"count", "latest", "at_latest"}


def sync_library_index(analysed: Any, index: GenreIndex) -> int:
    """Bring the partition of one user's `analysed` tracks up to date; how many there are.

    One aggregate (how many, the latest analysis) says whether anything changed since the
    last time; if it did, the tracks analysed since then, and any the partition lacks, are
    added. Writers of other processes wait on a lock and find the work done.
    """
    now = _fingerprint(analysed)
    if _unchanged(_read_state(index), now):
        return int(now["count"])
    with file_lock(index.directory / "sync.lock"):
        before = _read_state(index)
        if _unchanged(before, now):
            return int(now["count"])
        if before is None:
            index.clear()  # no record of what it holds: start over
        known = set(index.ids().tolist())
        since = (before or {}).get("latest")
        at_since = set((before or {}).get("at_latest", []))
        rows = analysed.filter(embedding__isnull=False).values_list("pk", "analysed_at")
        fresh = [
            pk
            for pk, at in rows.iterator(chunk_size=SYNC_BATCH)
            if pk not in known or _analysed_since(at, since, pk in at_since)
        ]
        _add(analysed, index, fresh)
        latest = now["latest"]
        at_latest = analysed.filter(analysed_at=latest) if latest else analysed.none()
        _write_state(index, {**now, "at_latest": sorted(at_latest.values_list("pk", flat=True))})
    return int(now["count"])


def refresh_library_indexes() -> list[int]:
    """Bring every user's partition up to date (run by celery beat, so that the first "songs
    like this" after a scan or a big import finds it built rather than building it then):
    the owners whose tracks it looked at (one aggregate each where nothing changed)."""
    from classifier.models import Track  # the library's own model, read here only

    analysed = Track.objects.filter(status=DONE, embedding__isnull=False)
    owners = sorted(set(analysed.values_list("owner_id", flat=True).distinct().order_by()))
    for owner_id in owners:
        sync_library_index(
            Track.objects.filter(owner_id=owner_id, status=DONE), library_index(owner_id)
        )
    return owners


def _analysed_since(at: Any, since: str | None, seen_then: bool) -> bool:
    """Whether a known track was analysed again after the partition last took it."""
    if at is None or since is None:
        return False
    stamp = _stamp(at)
    return stamp > since or (stamp == since and not seen_then)


def rebuild_library_index(analysed: Any, index: GenreIndex) -> None:
    """Start the partition over (most of its rows were of tracks gone or re-queued)."""
    with file_lock(index.directory / "sync.lock"):
        (index.directory / _STATE).unlink(missing_ok=True)
    sync_library_index(analysed, index)


def _fingerprint(analysed: Any) -> dict[str, Any]:
    # COUNT(*): one pass over the (owner, status, analysed_at) index, not over the rows.
    summary = analysed.aggregate(count=Count("*"), latest=Max("analysed_at"))
    latest = summary["latest"]
    return {"count": summary["count"], "latest": None if latest is None else _stamp(latest)}


def _unchanged(state: dict[str, Any] | None, now: dict[str, Any]) -> bool:
    return state is not None and (state.get("count"), state.get("latest")) == (
        now["count"],
        now["latest"],
    )


def _stamp(moment: Any) -> str:
    return str(moment.isoformat())


def _add(analysed: Any, index: GenreIndex, pks: list[int]) -> None:
    """Append the tracks' embeddings in batches; the IVF snapshot once, when it is due."""
    for start in range(0, len(pks), SYNC_BATCH):
        chunk = pks[start : start + SYNC_BATCH]
        rows = [
            (pk, vector)
            for pk, vector in analysed.filter(pk__in=chunk).values_list("pk", "embedding")
            if vector and len(vector) == DIM
        ]
        if rows:
            last = start + SYNC_BATCH >= len(pks)
            vectors = np.asarray([v for _, v in rows], dtype=np.float32)
            index.add([pk for pk, _ in rows], vectors, snapshot=last)


def _read_state(index: GenreIndex) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads((index.directory / _STATE).read_text())
    except (OSError, ValueError):
        return None
    return state


def _write_state(index: GenreIndex, state: dict[str, Any]) -> None:
    with atomic_write(index.directory / _STATE, mode=0o644) as partial:
        partial.write_text(json.dumps(state))
