"""An admin's hand on the catalog: re-fetch tracks, refresh their metadata, exclude them."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import QuerySet

from recommender.models import CatalogTrack, Status
from recommender.spotify import SpotifyClient, SpotifyError, track_info

log = logging.getLogger(__name__)

FORGOTTEN = {  # what a re-fetch resets: the track is pending again, as if just found
    "status": Status.PENDING,
    "sample": "",
    "sample_source": "",
    "sample_source_title": "",
    "sample_match": None,
    "sample_start": None,
    "verdict": None,
    "embedding": None,
    "primary_genre": "",
    "confidence": None,
    "uncertain": False,
    "model_version": "",
    "failure_reason": "",
    "claim_token": None,
    "claimed_at": None,
    "attempts": 0,
    "sampled_at": None,
    "analysed_at": None,
}


def refetch(tracks: QuerySet[CatalogTrack]) -> list[int]:
    """Forget sample and verdict; returns the ids whose re-fetch (Spotify metadata, then a
    new sample and verdict) should be queued."""
    ids = []
    with transaction.atomic():
        for track in tracks.select_for_update():
            if track.sample:
                track.sample.storage.delete(track.sample.name)
            CatalogTrack.objects.filter(pk=track.pk).update(**FORGOTTEN)
            ids.append(track.pk)
    return ids


def refresh_metadata(track_id: int, client: SpotifyClient | None = None) -> bool:
    """Update a track's Spotify fields from tracks/{id}; False where Spotify is unavailable."""
    try:
        client = client or SpotifyClient.from_settings()
        info = track_info(client.track(CatalogTrack.objects.get(pk=track_id).spotify_id))
    except SpotifyError as exc:
        log.warning("catalog track %s: metadata not refreshed: %s", track_id, exc)
        return False
    if info is None:
        return False
    CatalogTrack.objects.filter(pk=track_id).update(
        title=info.title,
        artists=info.artists,
        artist_ids=info.artist_ids,
        album=info.album,
        album_id=info.album_id,
        release_year=info.release_year,
        duration_ms=info.duration_ms,
        spotify_url=info.spotify_url,
        cover_url=info.cover_url,
    )
    return True


def exclude(tracks: QuerySet[CatalogTrack]) -> int:
    """Take tracks out of recommendations for good (a running step's result is then dropped)."""
    return tracks.update(status=Status.EXCLUDED, claim_token=None, claimed_at=None)
