"""Songs like this: the ranking, the API, the track page's block, the samples, the admin."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.template import Context, Template
from django.utils import timezone

from classifier.models import Track
from recommender import tasks
from recommender.index import library_index
from recommender.models import CatalogTrack, Status
from recommender.services import curation, indexing
from recommender.services.similar import similar_catalog, similar_in_library
from recommender.tasks import refresh_library_indexes

pytestmark = pytest.mark.django_db
RNG = np.random.default_rng(7)
BASE = RNG.standard_normal(200)
OTHER = RNG.standard_normal(200)


def near(cosine: float, base: np.ndarray = BASE, seed: int = 0) -> list[float]:
    """A vector whose cosine with `base` is exactly `cosine`."""
    unit = base / np.linalg.norm(base)
    noise = np.random.default_rng(seed).standard_normal(200)
    noise -= noise @ unit * unit
    noise /= np.linalg.norm(noise)
    return (cosine * unit + np.sqrt(1 - cosine**2) * noise).tolist()


def catalog_track(
    title: str, genre: str, embedding: list[float] | None, status: str = Status.ANALYSED, **fields
) -> CatalogTrack:
    n = CatalogTrack.objects.count()
    defaults = {
        "spotify_id": f"sp{n:020d}",
        "artists": ["Artist"],
        "spotify_url": f"https://open.spotify.com/track/sp{n:020d}",
        "cover_url": f"https://i.scdn.co/image/{n}",
        "album": "Album",
    }
    return CatalogTrack.objects.create(
        title=title,
        primary_genre=genre,
        embedding=embedding,
        status=status,
        **{**defaults, **fields},
    )


def user_track(
    owner, title: str, genre: str, embedding: list[float] | None, status: str = "done"
) -> Track:
    n = Track.objects.count()
    return Track.objects.create(
        owner=owner,
        title=title,
        artist="Me",
        file=f"tracks/{n}.mp3",
        original_name=f"{title}.mp3",
        sha256=f"{n:064d}",
        size=1,
        status=status,
        primary_genre=genre,
        embedding=embedding,
    )


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def jazz_catalog(catalog_settings):
    tracks = {
        "best": catalog_track("Best", "jazz", near(0.95, seed=1)),
        "good": catalog_track("Good", "jazz", near(0.80, seed=2)),
        "fair": catalog_track("Fair", "jazz", near(0.50, seed=3)),
        "rock": catalog_track("Rock twin", "rock", near(0.99, seed=4)),
        "excluded": catalog_track("Gone", "jazz", near(0.97, seed=5), status=Status.EXCLUDED),
        "pending": catalog_track("Later", "jazz", None, status=Status.PENDING),
    }
    indexing.sync_index()
    return tracks


def test_catalog_suggestions_share_the_genre_ranked_by_cosine(jazz_catalog, alice):
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    result = similar_catalog(mine, k=10)
    assert [s.item.title for s in result.items] == ["Best", "Good", "Fair"]
    assert [round(s.similarity, 3) for s in result.items] == [0.95, 0.8, 0.5]
    assert result.items[0].reason == "Same genre: jazz · similarity 0.95"
    assert result.genre == "jazz" and result.message == ""
    assert [s.item.title for s in similar_catalog(mine, k=2).items] == ["Best", "Good"]


def test_the_index_serves_the_query_and_exclusions_are_dropped(jazz_catalog, alice, settings):
    from recommender.services import similar

    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    curation.exclude(CatalogTrack.objects.filter(title="Best"))
    # No fallback to the database: the hits come from the index, filtered by the database.
    settings_limit, similar.DATABASE_EXACT_LIMIT = similar.DATABASE_EXACT_LIMIT, 0
    try:
        assert [s.item.title for s in similar_catalog(mine).items] == ["Good", "Fair"]
    finally:
        similar.DATABASE_EXACT_LIMIT = settings_limit


def test_a_genre_missing_from_the_catalog_is_said(jazz_catalog, alice):
    mine = user_track(alice, "Mine", "blues", BASE.tolist())
    result = similar_catalog(mine)
    assert not result and result.message == "The catalog has no blues tracks yet."


def test_uncertain_and_unanalysed_tracks_are_said(jazz_catalog, alice):
    uncertain = similar_catalog(user_track(alice, "Unsure", "", BASE.tolist()))
    assert not uncertain and "not sure of this track's genre" in uncertain.message
    pending = similar_catalog(user_track(alice, "Later", "", None, status="pending"))
    assert not pending and pending.message == "This track has not been analysed yet."


def test_library_suggestions_come_from_the_owner_only(alice):
    bob = get_user_model().objects.create_user("bob", password="pw-bob-123")
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    user_track(alice, "Close", "jazz", near(0.9, seed=6))
    user_track(alice, "Closer other genre", "rock", near(0.95, seed=7))
    user_track(alice, "Far", "jazz", near(-0.2, seed=8))
    user_track(alice, "Unanalysed", "", None, status="pending")
    user_track(bob, "Bob's twin", "jazz", near(0.999, seed=9))
    result = similar_in_library(mine)
    assert [s.item.title for s in result.items] == ["Closer other genre", "Close", "Far"]
    assert result.items[0].reason == "Different genre: rock · similarity 0.95"
    assert result.items[1].reason == "Same genre: jazz · similarity 0.90"
    alone = similar_in_library(user_track(bob, "Bob's", "jazz", BASE.tolist()))
    assert [s.item.title for s in alone.items] == ["Bob's twin"]


def test_library_suggestions_follow_the_library_through_its_index(alice):
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    user_track(alice, "Fair", "jazz", near(0.5, seed=10))
    assert [s.item.title for s in similar_in_library(mine, k=1).items] == ["Fair"]
    index = library_index(alice.pk)
    assert sorted(index.ids().tolist()) == sorted(Track.objects.values_list("pk", flat=True))

    # Analysed since the index last looked: added to it.
    close = user_track(alice, "Close", "jazz", near(0.9, seed=11))
    Track.objects.filter(pk=close.pk).update(analysed_at=timezone.now())
    assert [s.item.title for s in similar_in_library(mine, k=1).items] == ["Close"]
    assert close.pk in index.ids().tolist()

    # Analysed again, far from it now: its new row wins.
    Track.objects.filter(pk=close.pk).update(
        embedding=near(-0.5, seed=12), analysed_at=timezone.now() + timedelta(seconds=1)
    )
    assert [s.item.title for s in similar_in_library(mine, k=2).items] == ["Fair", "Close"]

    # Deleted, or queued for a new analysis: never suggested, though the index still has it.
    Track.objects.filter(title="Fair").update(status="pending")
    close.delete()
    result = similar_in_library(mine, k=2)
    assert result.items == [] and result.message == "No other analysed tracks in your library yet."


def test_celery_beat_builds_each_users_index_before_anyone_asks(alice, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="pw-bob-123")
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    user_track(alice, "Fair", "jazz", near(0.5, seed=10))
    theirs = user_track(bob, "Theirs", "rock", near(0.2, seed=11))
    user_track(bob, "Unanalysed", "", None, status="pending")
    assert refresh_library_indexes() == sorted([alice.pk, bob.pk])
    assert sorted(library_index(alice.pk).ids().tolist()) == sorted(
        Track.objects.filter(owner=alice).values_list("pk", flat=True)
    )
    assert library_index(bob.pk).ids().tolist() == [theirs.pk]
    assert [s.item.title for s in similar_in_library(mine, k=1).items] == ["Fair"]


def test_api_lists_catalog_and_library_suggestions(jazz_catalog, alice, client):
    jazz_catalog["best"].sample.save("best.mp3", ContentFile(b"ID3" + b"\0" * 100))
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    user_track(alice, "Close", "jazz", near(0.9, seed=6))
    client.force_login(alice)
    response = client.get(f"/api/tracks/{mine.pk}/similar/?k=2")
    assert response.status_code == 200
    data = response.json()
    assert data["genre"] == "jazz" and data["track"]["id"] == mine.pk
    best = data["catalog"]["results"][0]
    best_track = jazz_catalog["best"]
    assert len(data["catalog"]["results"]) == 2
    assert best["title"] == "Best" and best["artist"] == "Artist"
    assert best["spotify_url"] == best_track.spotify_url
    assert best["cover_url"] == best_track.cover_url
    assert best["sample_url"] == f"http://testserver/catalog/{best_track.pk}/sample/"
    assert best["shared_genre"] is True and best["similarity"] == pytest.approx(0.95, abs=1e-4)
    assert best["reason"] == "Same genre: jazz · similarity 0.95"
    assert data["catalog"]["results"][1]["sample_url"] is None
    assert [r["title"] for r in data["library"]["results"]] == ["Close"]


def test_api_says_when_the_catalog_lacks_the_genre(catalog_settings, alice, client):
    mine = user_track(alice, "Mine", "metal", BASE.tolist())
    client.force_login(alice)
    data = client.get(f"/api/tracks/{mine.pk}/similar/").json()
    assert data["catalog"] == {"results": [], "message": "The catalog has no metal tracks yet."}


def test_api_hides_other_users_tracks(jazz_catalog, alice, client):
    bob = get_user_model().objects.create_user("bob", password="pw-bob-123")
    bobs = user_track(bob, "Bob's", "jazz", BASE.tolist())
    client.force_login(alice)
    assert client.get(f"/api/tracks/{bobs.pk}/similar/").status_code == 404
    assert client.get("/api/tracks/999999/similar/").status_code == 404
    client.logout()
    assert client.get(f"/api/tracks/{bobs.pk}/similar/").status_code in (401, 403)


def test_track_page_block_shows_players_links_and_reasons(jazz_catalog, alice):
    jazz_catalog["best"].sample.save("best.mp3", ContentFile(b"ID3" + b"\0" * 100))
    mine = user_track(alice, "Mine", "jazz", BASE.tolist())
    close = user_track(alice, "Close", "jazz", near(0.9, seed=6))
    html = Template("{% load songs_like_this %}{% songs_like_this track %}").render(
        Context({"track": mine})
    )
    best = jazz_catalog["best"]
    assert f'<audio controls preload="none" src="/catalog/{best.pk}/sample/">' in html
    assert f'<img class="slt-cover" src="{best.cover_url}"' in html
    assert f'href="{best.spotify_url}"' in html
    assert "Same genre: jazz · similarity 0.95" in html
    assert html.index("Best") < html.index("Good") < html.index("Fair")
    assert f'href="/tracks/{close.pk}/"' in html
    assert "Rock twin" not in html and "Gone" not in html


def test_track_page_block_says_when_there_is_nothing(catalog_settings, alice):
    mine = user_track(alice, "Mine", "reggae", BASE.tolist())
    html = Template("{% load songs_like_this %}{% songs_like_this track %}").render(
        Context({"track": mine})
    )
    assert "The catalog has no reggae tracks yet." in html
    assert "No other analysed tracks in your library yet." in html


def test_samples_play_for_signed_in_users(jazz_catalog, alice, client):
    best = jazz_catalog["best"]
    best.sample.save("best.mp3", ContentFile(b"ID3" + b"\1" * 100))
    assert client.get(f"/catalog/{best.pk}/sample/").status_code == 302  # to the login page
    client.force_login(alice)
    response = client.get(f"/catalog/{best.pk}/sample/")
    assert response.status_code == 200 and response["Content-Type"] == "audio/mpeg"
    assert b"".join(response.streaming_content) == b"ID3" + b"\1" * 100
    assert client.get(f"/catalog/{jazz_catalog['good'].pk}/sample/").status_code == 404


def test_admin_searches_plays_excludes_and_refetches(
    jazz_catalog, client, sent, django_capture_on_commit_callbacks
):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw-admin-1")
    client.force_login(admin)
    best = jazz_catalog["best"]
    best.sample.save("best.mp3", ContentFile(b"ID3" + b"\0" * 100))
    changelist = "/admin/recommender/catalogtrack/"
    page = client.get(changelist, {"q": "Best"}).content.decode()
    assert "Best" in page and "Rock twin" not in page
    assert f'src="/catalog/{best.pk}/sample/"' in page
    filtered = client.get(changelist, {"status__exact": "excluded"}).content.decode()
    assert "Gone" in filtered and "Fair" not in filtered
    detail = client.get(f"{changelist}{best.pk}/change/").content.decode()
    assert "<audio" in detail and "Genres:" not in detail  # no verdict stored for it

    response = client.post(
        changelist, {"action": "exclude_tracks", "_selected_action": [jazz_catalog["fair"].pk]}
    )
    assert response.status_code == 302
    assert CatalogTrack.objects.get(pk=jazz_catalog["fair"].pk).status == Status.EXCLUDED
    with django_capture_on_commit_callbacks(execute=True) as queued:
        client.post(changelist, {"action": "refetch_tracks", "_selected_action": [best.pk]})
    assert len(queued) == 1
    assert sent == [(tasks.REFETCH_CATALOG_TRACK, best.pk)]
    best.refresh_from_db()
    assert best.status == Status.PENDING and not best.sample


def test_admin_shows_the_verdict(jazz_catalog, client):
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "pw-admin-1")
    client.force_login(admin)
    good = jazz_catalog["good"]
    CatalogTrack.objects.filter(pk=good.pk).update(
        verdict={
            "genres": [{"name": "jazz", "confidence": 0.81}, {"name": "blues", "confidence": 0.1}],
            "styles": [{"name": "bebop", "score": 0.42}],
        }
    )
    detail = client.get(f"/admin/recommender/catalogtrack/{good.pk}/change/").content.decode()
    assert "Genres: jazz 81%, blues 10%" in detail and "Styles: bebop 42%" in detail
