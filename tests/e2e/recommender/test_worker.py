"""End to end: build_catalog with a real Celery worker, then "songs like this" for an upload.

Spotify is the local stand-in, the "video site" is the local media stand-in serving real
music (GTZAN clips), yt-dlp and ffmpeg cut the samples, the real engine analyses them, and
`celery -A genreweb worker --pool solo` runs every step on the Redis database of
GENREWEB_TEST_REDIS_URL (see tests/conftest.py) and the test database.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from classifier.models import Track
from recommender.models import CatalogArtist, CatalogTrack, Status
from tests.audiofiles import joined_clips
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_SECONDS = 300


def build(*args: str) -> str:
    out = io.StringIO()
    call_command("build_catalog", *args, stdout=out)
    return out.getvalue()


def test_build_a_catalog_then_songs_like_an_upload(
    catalog_worker, broker, spotify, media, gtzan_dir, tmp_path, settings
):
    clips = tmp_path / "site"
    clips.mkdir()
    # The catalog: two metal tracks (their artist tagged metal on Spotify), two classical ones
    # (their artist without genres) and one that no search finds.
    iron = spotify.artist("Iron Testers", genres=["metal", "thrash metal"])
    quiet = spotify.artist("Quiet Players", genres=None)
    heavy = spotify.album(iron, "Heavy", [("Anvil", 60), ("Forge", 60)], "1986-03-03")
    calm = spotify.album(quiet, "Calm", [("Nocturne", 60), ("Etude", 60), ("Lost Song", 60)])
    for track, genre, numbers in (
        (heavy.tracks[0], "metal", (0, 1)),
        (heavy.tracks[1], "metal", (2, 3)),
        (calm.tracks[0], "classical", (0, 1)),
        (calm.tracks[1], "classical", (2, 3)),
    ):
        source = joined_clips(
            [gtzan_dir / genre / f"{genre}.{n:05d}.flac" for n in numbers],
            clips / f"{track.id}.m4a",
        )
        artist = track.artists[0].name
        media.add_result(
            f"{artist} - {track.name}", f"{artist} - {track.name} (Live)", source, 200
        )  # a decoy: another version, another length
        media.add_result(f"{artist} - {track.name}", f"{artist} - {track.name}", source, 60)
    spotify.fail("^/v1/artists/[^/]+$", (429, {"Retry-After": "1"}))  # honoured, then retried
    seeds = ["--artist", iron.id, "--album", calm.id, "--search", 'genre:"metal"', "--limit", "10"]

    # 1. Seeds read, five tracks pending; then the broker loses their messages.
    first = build(*seeds)
    assert "catalog: 5 tracks: 5 pending" in first
    assert CatalogTrack.objects.filter(status=Status.PENDING).count() == 5
    assert broker.llen("celery") == 5
    broker.flushdb()
    spotify_requests = len(spotify.log)

    # 2. The next run queues them again and waits for the worker: nothing fetched twice.
    worker = catalog_worker()
    second = build(*seeds, "--wait", "--timeout", "400")
    assert "going on from an earlier run: 5 to sample, 0 to analyse" in second
    assert second.strip().endswith(
        "catalog: 5 tracks: 0 pending, 0 sampled, 4 analysed, 1 failed, 0 excluded"
    ), second
    assert len(spotify.log) == spotify_requests
    assert [r.status for r in spotify.requests("^/v1/artists/[^/]+$")] == [429, 200, 200]

    anvil = CatalogTrack.objects.get(title="Anvil")
    assert anvil.primary_genre == "Metal" and len(anvil.embedding) == 200
    assert anvil.artist_genres == ["metal", "thrash metal"]
    assert anvil.sample_source_title == "Iron Testers - Anvil"  # not the live decoy
    assert 25 <= anvil.verdict["duration"] <= 31
    nocturne = CatalogTrack.objects.get(title="Nocturne")
    assert nocturne.primary_genre == "Classical" and nocturne.artist_genres == []
    assert CatalogArtist.objects.get(name="Quiet Players").genres == []
    lost = CatalogTrack.objects.get(title="Lost Song")
    assert lost.status == Status.FAILED and "no search results" in lost.failure_reason
    downloads = len(media.requests("^/audio/"))

    # 3. A third run fetches nothing at all.
    third = build(*seeds)
    assert len(spotify.log) == spotify_requests
    assert len(media.requests("^/audio/")) == downloads
    assert "4 analysed, 1 failed" in third

    # 4. A user uploads a metal track; the same worker analyses it.
    user = get_user_model().objects.create_user("listener", password="a-long-password-42")
    client = Client()
    client.force_login(user)
    upload = joined_clips(
        [gtzan_dir / "metal" / "metal.00004.flac"], clips / "mine.flac", fmt="flac"
    )
    response = client.post(
        reverse("upload"),
        {"file": SimpleUploadedFile(upload.name, upload.read_bytes())},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    track_id = response.json()["id"]
    wait_for(
        lambda: Track.objects.get(pk=track_id).status in ("done", "failed"),
        WAIT_SECONDS,
        "the upload's analysis",
        worker,
    )
    mine = Track.objects.get(pk=track_id)
    assert mine.status == "done" and mine.primary_genre == "Metal", mine.error

    # 5. Songs like this: the catalog's metal tracks, ranked, with players and reasons.
    data = client.get(f"/api/tracks/{track_id}/similar/").json()
    results = data["catalog"]["results"]
    assert {r["title"] for r in results} == {"Anvil", "Forge"}
    assert results[0]["similarity"] >= results[1]["similarity"] > 0
    assert all(r["reason"].startswith("Same genre: Metal · similarity ") for r in results)
    assert all(r["spotify_url"] and r["cover_url"] and r["sample_url"] for r in results)
    sample = client.get(results[0]["sample_url"])
    assert sample.status_code == 200 and sample["Content-Type"] == "audio/mpeg"
    assert data["library"]["message"] == "No other analysed tracks in your library yet."
    html = Template("{% load songs_like_this %}{% songs_like_this track %}").render(
        Context({"track": mine})
    )
    assert html.count("<audio controls") == 2 and "Nocturne" not in html
    page = client.get(reverse("track-detail", args=[track_id])).content.decode()
    assert "Anvil" in page and "Same genre: Metal" in page
