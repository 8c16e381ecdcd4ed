"""Seeds to pending tracks: Spotify paging, resumable seed by seed, and the artists' genres.

A seed keeps how far its paging got, committed page by page, so a second run with the same
seeds asks Spotify nothing and a stopped one goes on from its last page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction

from recommender.models import CatalogArtist, CatalogSeed, CatalogTrack
from recommender.spotify import SpotifyClient, TrackInfo, advance, artist_genres, seed_id

log = logging.getLogger(__name__)
Report = Callable[[str], None]
NewTracks = Callable[[list[int]], None]


@dataclass
class HarvestReport:
    seeds: int = 0
    new_tracks: int = 0
    skipped_seeds: list[str] = field(default_factory=list)  # finished in an earlier run


def harvest(
    client: SpotifyClient,
    seeds: Iterable[tuple[str, str]],
    limit: int,
    *,
    on_new_tracks: NewTracks,
    report: Report = log.info,
) -> HarvestReport:
    """Take up to `limit` tracks from each seed, going on where an earlier run stopped.

    `on_new_tracks` gets the ids of each page's new tracks inside the page's transaction
    (the caller queues their sampling on commit), so workers start on the first pages while
    later ones are still read, and a build stopped half way has sent what it committed.
    """
    result = HarvestReport()
    for kind, raw in seeds:
        seed, _ = CatalogSeed.objects.get_or_create(kind=kind, value=seed_id(kind, raw))
        result.seeds += 1
        if seed.is_done(limit):
            result.skipped_seeds.append(str(seed))
            report(f"{seed}: done in an earlier run ({seed.found} tracks)")
            continue
        result.new_tracks += _page_through(client, seed, limit, on_new_tracks)
        report(f"{seed}: {seed.found} tracks{' (all there are)' if seed.exhausted else ''}")
    fill_artist_genres(client)
    return result


def _page_through(
    client: SpotifyClient, seed: CatalogSeed, limit: int, on_new_tracks: NewTracks
) -> int:
    new = 0
    while not seed.is_done(limit):
        step = advance(client, seed.kind, seed.value, seed.cursor, limit - seed.found)
        taken = step.tracks[: limit - seed.found]
        with transaction.atomic():
            created = add_tracks(taken)
            on_new_tracks([track.pk for track in created])
            seed.cursor, seed.exhausted = step.state, step.exhausted
            seed.found += len(taken)
            seed.save(update_fields=["cursor", "exhausted", "found", "updated_at"])
        new += len(created)
    return new


def add_tracks(infos: Iterable[TrackInfo]) -> list[CatalogTrack]:
    """Create the tracks not in the catalog yet (pending); returns the new ones."""
    created = []
    for info in infos:
        track, is_new = CatalogTrack.objects.get_or_create(
            spotify_id=info.spotify_id,
            defaults={
                "title": info.title,
                "artists": info.artists,
                "artist_ids": info.artist_ids,
                "album": info.album,
                "album_id": info.album_id,
                "release_year": info.release_year,
                "duration_ms": info.duration_ms,
                "spotify_url": info.spotify_url,
                "cover_url": info.cover_url,
            },
        )
        if is_new:
            created.append(track)
    return created


def fill_artist_genres(client: SpotifyClient, batch: int = 200) -> int:
    """Give each track its artists' genres, fetching every artist once (artists/{id})."""
    done = 0
    while True:
        tracks = list(
            CatalogTrack.objects.filter(artist_genres_fetched=False).only("id", "artist_ids")[
                :batch
            ]
        )
        if not tracks:
            return done
        known = _artist_genres(client, {a for t in tracks for a in t.artist_ids})
        for track in tracks:
            genres = sorted({g for a in track.artist_ids for g in known.get(a, [])})
            CatalogTrack.objects.filter(pk=track.pk).update(
                artist_genres=genres, artist_genres_fetched=True
            )
        done += len(tracks)


def _artist_genres(client: SpotifyClient, wanted: set[str]) -> dict[str, list[str]]:
    """Each wanted artist's genres: stored ones as they are, the others fetched and stored."""
    known = dict(
        CatalogArtist.objects.filter(spotify_id__in=wanted).values_list("spotify_id", "genres")
    )
    for artist_id in sorted(wanted - known.keys()):
        artist = client.artist(artist_id)
        known[artist_id] = artist_genres(artist)
        CatalogArtist.objects.get_or_create(
            spotify_id=artist_id,
            defaults={"name": (artist.get("name") or "")[:500], "genres": known[artist_id]},
        )
    return known
