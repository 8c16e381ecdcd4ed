"""The catalog's nearest-neighbour index kept in step with the database, its source of truth.

The index itself (partitions, files, FAISS) is `recommender.index`; this module decides what
goes into it.
"""

from __future__ import annotations

import numpy as np

from recommender.index import catalog_index
from recommender.models import CatalogTrack, Status

SYNC_BATCH = 1000  # embeddings read from the database at once


def index_track(track_id: int, genre: str, embedding: list[float]) -> None:
    catalog_index().add(genre, track_id, np.asarray(embedding, dtype=np.float32))


def sync_index() -> int:
    """Add analysed tracks the index lacks (a worker that died between commit and index)."""
    genres = (
        CatalogTrack.objects.filter(status=Status.ANALYSED)
        .exclude(primary_genre="")
        .values_list("primary_genre", flat=True)
        .distinct()
    )
    return sum(_sync_partition(genre) for genre in genres)


def _sync_partition(genre: str) -> int:
    part = catalog_index().partition(genre)
    present = set(part.ids().tolist())
    analysed = CatalogTrack.objects.filter(status=Status.ANALYSED, primary_genre=genre).filter(
        embedding__isnull=False
    )
    missing = sorted(set(analysed.values_list("pk", flat=True)) - present)
    added = 0
    for start in range(0, len(missing), SYNC_BATCH):
        rows = list(
            analysed.filter(pk__in=missing[start : start + SYNC_BATCH]).values_list(
                "pk", "embedding"
            )
        )
        part.add([pk for pk, _ in rows], np.asarray([e for _, e in rows], dtype=np.float32))
        added += len(rows)
    part.flush()
    return added


def rebuild_index() -> dict[str, int]:
    """Rebuild every partition from the analysed tracks in the database."""
    rows = (
        CatalogTrack.objects.filter(status=Status.ANALYSED)
        .exclude(primary_genre="")
        .filter(embedding__isnull=False)
        .order_by("pk")
        .values_list("primary_genre", "pk", "embedding")
    )
    return catalog_index().rebuild(rows.iterator(chunk_size=2000))
