"""Building the catalog (recommender.services and the tasks that queue its steps): seeds to
tracks, claims, the sampling step, resuming, admin actions, the index."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from recommender import tasks
from recommender.index import catalog_index
from recommender.models import CatalogArtist, CatalogSeed, CatalogTrack, Status
from recommender.services import (
    analysis,
    claims,
    curation,
    harvesting,
    indexing,
    progress,
    sampling,
)
from recommender.spotify import RateLimited, RetryPolicy, SpotifyClient
from tests.app.recommender.conftest import sectioned_song
from tests.app.recommender.standins import SpotifyStandIn

pytestmark = pytest.mark.django_db


def harvest(
    client: SpotifyClient, seeds: list[tuple[str, str]], limit: int
) -> harvesting.HarvestReport:
    """A harvest whose new tracks are queued for sampling, as build_catalog queues them."""
    return harvesting.harvest(client, seeds, limit, on_new_tracks=tasks.queue_sampling)


def client_for(server: SpotifyStandIn) -> SpotifyClient:
    return SpotifyClient(
        SpotifyStandIn.CLIENT_ID,
        SpotifyStandIn.CLIENT_SECRET,
        api_url=server.api_url,
        token_url=server.token_url,
        policy=RetryPolicy(
            max_retries=2, max_retry_after=5, backoff_base=0.01, sleep=lambda s: None
        ),
    )


@pytest.fixture
def library(spotify):
    """Two jazz artists (one without genres from Spotify) and a rock artist."""
    nina = spotify.artist("Nina Simone", genres=["jazz", "soul"])
    miles = spotify.artist("Miles Davis", genres=None)
    queen = spotify.artist("Queen", genres=["rock"])
    jazz = spotify.album(
        nina, "Pastel Blues", [(f"Blues {n}", 200 + n) for n in range(1, 26)], "1965-10-01"
    )
    kind = spotify.album(
        miles, "Kind of Blue", [("So What", 562), ("Freddie Freeloader", 589)], "1959-08-17"
    )
    rock = spotify.album(queen, "A Night at the Opera", [("Bohemian Rhapsody", 354)], "1975-11-21")
    return {"nina": nina, "miles": miles, "queen": queen, "jazz": jazz, "kind": kind, "rock": rock}


def test_harvest_makes_pending_tracks_with_their_spotify_fields(
    catalog_settings, spotify, library, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as queued:
        result = harvest(
            client_for(spotify), [("album", library["kind"].id), ("search", "Bohemian")], limit=10
        )
    assert result.new_tracks == 3 and result.seeds == 2
    assert len(queued) == 3  # one sampling task per new track, sent on commit
    assert sent == [
        (tasks.SAMPLE_CATALOG_TRACK, pk)
        for pk in CatalogTrack.objects.order_by("pk").values_list("pk", flat=True)
    ]
    track = CatalogTrack.objects.get(title="So What")
    assert track.status == Status.PENDING
    assert track.spotify_id == library["kind"].tracks[0].id
    assert track.artists == ["Miles Davis"] and track.artist_ids == [library["miles"].id]
    assert track.album == "Kind of Blue" and track.album_id == library["kind"].id
    assert track.release_year == 1959 and track.duration_ms == 562_000
    assert track.spotify_url == f"https://open.spotify.com/track/{track.spotify_id}"
    assert track.cover_url.endswith("-300.jpg")
    # Miles Davis has no genres on Spotify: the track still goes on, from its audio alone.
    assert track.artist_genres == [] and track.artist_genres_fetched
    queen = CatalogTrack.objects.get(title="Bohemian Rhapsody")
    assert queen.artist_genres == ["rock"]
    assert set(CatalogArtist.objects.values_list("name", flat=True)) == {"Miles Davis", "Queen"}


def test_every_artist_is_fetched_once(catalog_settings, spotify, library):
    harvest(client_for(spotify), [("album", library["jazz"].id), ("search", "Blues 1")], limit=30)
    assert len(spotify.requests(f"^/v1/artists/{library['nina'].id}$")) == 1
    assert CatalogTrack.objects.filter(artist_genres=["jazz", "soul"]).count() == 25


def test_a_second_run_fetches_nothing_twice(catalog_settings, spotify, library):
    seeds = [
        ("search", 'genre:"jazz"'),
        ("album", library["kind"].id),
        ("artist", library["queen"].id),
    ]
    first = harvest(client_for(spotify), seeds, limit=20)
    seen = len(spotify.log)
    second = harvest(client_for(spotify), seeds, limit=20)
    assert first.new_tracks == 23 and second.new_tracks == 0
    assert len(spotify.log) == seen  # not a single request, not even for a token
    assert len(second.skipped_seeds) == 3
    assert CatalogTrack.objects.count() == 23


def test_a_stopped_build_goes_on_from_its_last_page(catalog_settings, spotify, library):
    # The third search page is refused with a Retry-After beyond the cap: the build stops.
    client = client_for(spotify)
    original = spotify.handle
    pages = []

    def third_page_limited(method, path, query, headers, body):
        if path == "/v1/search":
            pages.append(query["offset"])
            if len(pages) == 3:
                return 429, b"{}", "application/json", {"Retry-After": "3600"}
        return original(method, path, query, headers, body)

    spotify.handle = third_page_limited
    with pytest.raises(RateLimited, match="3600 s"):
        harvest(client, [("search", 'genre:"jazz"')], limit=25)
    seed = CatalogSeed.objects.get()
    assert seed.found == 20 and not seed.exhausted
    assert CatalogTrack.objects.count() == 20

    spotify.handle = original
    harvest(client_for(spotify), [("search", 'genre:"jazz"')], limit=25)
    offsets = [r.query["offset"] for r in spotify.requests("^/v1/search$")]
    assert offsets == ["0", "10", "20", "20"]  # the refused page once more, nothing before it
    assert CatalogTrack.objects.count() == 25


def test_a_higher_limit_takes_more_from_the_same_seed(catalog_settings, spotify, library):
    harvest(client_for(spotify), [("album", library["jazz"].id)], limit=5)
    harvest(client_for(spotify), [("album", library["jazz"].id)], limit=12)
    assert CatalogTrack.objects.count() == 12
    assert len(spotify.requests(f"^/v1/albums/{library['jazz'].id}$")) == 1
    assert [r.query["offset"] for r in spotify.requests("/tracks/?$")] == ["5"]


# --- claims and the sampling step -------------------------------------------------------------


def make_track(**fields) -> CatalogTrack:
    defaults = {
        "spotify_id": f"tr{CatalogTrack.objects.count():020d}",
        "title": "Song",
        "artists": ["Artist"],
        "duration_ms": 40_000,
    }
    return CatalogTrack.objects.create(**{**defaults, **fields})


def test_a_claim_is_taken_once_until_its_lease_runs_out(settings):
    settings.RECOMMENDER_CLAIM_LEASE = 60
    track = make_track()
    assert claims.claim(track.pk, Status.PENDING) is not None
    assert claims.claim(track.pk, Status.PENDING) is None
    assert claims.claim(track.pk, Status.SAMPLED) is None
    CatalogTrack.objects.filter(pk=track.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=61)
    )  # its worker died
    assert claims.claim(track.pk, Status.PENDING) is not None
    assert CatalogTrack.objects.get(pk=track.pk).attempts == 2


def test_sampling_stores_the_sample_and_queues_the_analysis(
    catalog_settings, media, song_dir, sent, django_capture_on_commit_callbacks
):
    track = make_track(title="Roads - 2011 Remaster", artists=["Portishead", "Someone"])
    song = sectioned_song(song_dir, "roads", seconds=40)
    media.add_result("Portishead - Roads", "Portishead - Roads (Official Audio)", song, 40)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        assert tasks.sample_catalog_track(track.pk) == "sampled"
    assert len(queued) == 1
    assert sent == [(tasks.ANALYSE_CATALOG_TRACK, track.pk)]
    track.refresh_from_db()
    assert track.status == Status.SAMPLED
    assert track.sample.name == f"catalog/samples/{track.spotify_id[:2]}/{track.spotify_id}.mp3"
    assert Path(track.sample.path).stat().st_size > 10_000
    assert track.sample_source_title == "Portishead - Roads (Official Audio)"
    assert track.sample_match > 0.8 and track.sample_start == 5.0
    assert track.claim_token is None and track.attempts == 0 and track.sampled_at
    # A second message for the same track finds nothing to do.
    assert sampling.sample_track(track.pk) == "skipped"


def test_a_track_without_a_match_fails_with_its_reason(catalog_settings, media):
    track = make_track(title="Unfindable", artists=["Nobody"])
    assert sampling.sample_track(track.pk) == "failed"
    track.refresh_from_db()
    assert track.status == Status.FAILED
    assert track.failure_reason.startswith("no sample: no search results")
    assert not track.sample


def test_network_failures_are_retried_then_fail(catalog_settings, media, song_dir, settings):
    settings.RECOMMENDER_MAX_ATTEMPTS = 2
    settings.RECOMMENDER_RETRY_BACKOFF = 7.0
    track = make_track(title="Song", artists=["Artist"])
    media.add_result("Artist - Song", "Artist - Song", sectioned_song(song_dir, "s", 40), 40)
    media.fail("^/audio/", *[(503, {})] * 50)
    with pytest.raises(claims.RetryLater) as retry:
        sampling.sample_track(track.pk)
    assert retry.value.countdown == 7.0
    track.refresh_from_db()
    assert track.status == Status.PENDING and track.claim_token is None
    assert track.failure_reason.startswith("will retry:")
    assert sampling.sample_track(track.pk) == "failed"
    track.refresh_from_db()
    assert track.status == Status.FAILED
    assert track.failure_reason.startswith("network kept failing (2 attempts)")


@pytest.mark.django_db(transaction=True)
def test_an_exclusion_during_sampling_wins(catalog_settings, media, song_dir):
    track = make_track(title="Song", artists=["Artist"])
    media.add_result("Artist - Song", "Artist - Song", sectioned_song(song_dir, "s", 40), 40)
    original = media.handle

    def exclude_while_downloading(method, path, query, headers, body):
        if path.startswith("/audio/"):
            # An admin excludes the track while the worker downloads it.
            thread = threading.Thread(target=exclude_in_another_connection)
            thread.start()
            thread.join()
        return original(method, path, query, headers, body)

    def exclude_in_another_connection():
        curation.exclude(CatalogTrack.objects.filter(pk=track.pk))
        connection.close()

    media.handle = exclude_while_downloading
    assert sampling.sample_track(track.pk) == "lost"
    track.refresh_from_db()
    assert track.status == Status.EXCLUDED and not track.sample
    samples = Path(catalog_settings.MEDIA_ROOT) / "catalog" / "samples"
    assert not any(samples.rglob("*.mp3"))


# --- resuming, progress, admin actions, the index ----------------------------------------------


def test_unfinished_tracks_are_queued_again(settings, sent, django_capture_on_commit_callbacks):
    pending = make_track(status=Status.PENDING)
    sampled = make_track(status=Status.SAMPLED)
    make_track(
        status=Status.PENDING,
        claim_token="00000000-0000-0000-0000-000000000001",
        claimed_at=timezone.now(),
    )  # a worker holds it right now
    make_track(status=Status.ANALYSED)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        counts = tasks.requeue_unfinished()
    assert counts == {"pending": 1, "sampled": 1}
    assert len(queued) == 2
    assert sent == [
        (tasks.SAMPLE_CATALOG_TRACK, pending.pk),
        (tasks.ANALYSE_CATALOG_TRACK, sampled.pk),
    ]


def test_progress_counts_every_status():
    for status in (Status.PENDING, Status.PENDING, Status.ANALYSED, Status.FAILED):
        make_track(status=status)
    counts = progress.progress()
    assert counts == {"pending": 2, "sampled": 0, "analysed": 1, "failed": 1, "excluded": 0}
    assert progress.format_progress(counts) == (
        "catalog: 4 tracks: 2 pending, 0 sampled, 1 analysed, 1 failed, 0 excluded"
    )
    assert progress.unfinished(counts) == 2


def test_refetch_forgets_sample_and_verdict(
    catalog_settings, sent, django_capture_on_commit_callbacks
):
    from django.core.files.base import ContentFile

    track = make_track(
        status=Status.ANALYSED,
        primary_genre="jazz",
        embedding=[0.1] * 200,
        verdict={"genres": [{"name": "jazz", "confidence": 0.9}]},
    )
    track.sample.save("x.mp3", ContentFile(b"ID3 not really"))
    path = Path(track.sample.path)
    with django_capture_on_commit_callbacks(execute=True) as queued:
        track_ids = curation.refetch(CatalogTrack.objects.filter(pk=track.pk))
        tasks.queue_refetch(track_ids)  # what the admin action does with them
    assert track_ids == [track.pk]
    assert len(queued) == 1 and not path.exists()
    assert sent == [(tasks.REFETCH_CATALOG_TRACK, track.pk)]
    track.refresh_from_db()
    assert (track.status, track.primary_genre, track.embedding, track.verdict) == (
        Status.PENDING,
        "",
        None,
        None,
    )
    assert curation.exclude(CatalogTrack.objects.filter(pk=track.pk)) == 1
    assert CatalogTrack.objects.get(pk=track.pk).status == Status.EXCLUDED


def test_refresh_metadata_reads_tracks_by_id(catalog_settings, spotify, library):
    spotify_track = library["rock"].tracks[0]
    track = make_track(spotify_id=spotify_track.id, title="old title", artists=["old"])
    assert curation.refresh_metadata(track.pk)
    track.refresh_from_db()
    assert (track.title, track.artists, track.release_year) == (
        "Bohemian Rhapsody",
        ["Queen"],
        1975,
    )
    assert spotify.requests(f"^/v1/tracks/{spotify_track.id}$")


def test_sync_and_rebuild_put_analysed_tracks_in_the_index(catalog_settings):
    rng = np.random.default_rng(0)
    tracks = [
        make_track(
            status=Status.ANALYSED, primary_genre=genre, embedding=rng.standard_normal(200).tolist()
        )
        for genre in ("jazz", "jazz", "rock")
    ]
    make_track(
        status=Status.EXCLUDED, primary_genre="jazz", embedding=rng.standard_normal(200).tolist()
    )
    assert indexing.sync_index() == 3
    assert indexing.sync_index() == 0
    jazz = catalog_index().search("jazz", np.asarray(tracks[0].embedding), 10)
    assert [pk for pk, _ in jazz][0] == tracks[0].pk and len(jazz) == 2
    assert indexing.rebuild_index() == {"jazz": 2, "rock": 1}


# --- the analysis step, with the real engine ----------------------------------------------------


def test_analysis_stores_the_verdict_and_indexes_the_track(
    catalog_settings, gtzan_dir, django_capture_on_commit_callbacks
):
    from django.core.files import File

    track = make_track(status=Status.SAMPLED, title="Metal test")
    with open(gtzan_dir / "metal" / "metal.00002.flac", "rb") as handle:
        track.sample.save("metal.flac", File(handle))
    with django_capture_on_commit_callbacks(execute=True):
        assert analysis.analyse_track(track.pk) == "analysed"
    track.refresh_from_db()
    assert track.status == Status.ANALYSED and track.analysed_at
    assert track.primary_genre == "Metal" and track.confidence > 0.5
    assert len(track.embedding) == 200 and track.model_version
    assert track.verdict["genres"][0]["name"] == "Metal"
    assert set(track.verdict["probabilities"]) >= {"Metal", "Jazz"}
    assert catalog_index().search("Metal", np.asarray(track.embedding), 1)[0][0] == track.pk
    assert analysis.analyse_track(track.pk) == "skipped"


def test_a_sample_the_engine_cannot_read_fails(catalog_settings):
    from django.core.files.base import ContentFile

    track = make_track(status=Status.SAMPLED)
    track.sample.save("broken.mp3", ContentFile(b"this is not audio at all" * 100))
    assert analysis.analyse_track(track.pk) == "failed"
    track.refresh_from_db()
    assert track.status == Status.FAILED
    assert track.failure_reason.startswith("the engine could not read the sample:")
