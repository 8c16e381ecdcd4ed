"""The evidence in the API (the track detail carries audio_genres and evidence in the shapes
of `classify --json`, and the album flag; the list filters the review queue) and on the
track page ("Why this genre", with its picture)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.app.web.evidence_helpers import arrive, audio_analysis, tagged_file

pytestmark = pytest.mark.django_db

ROCK = {"Rock": 0.7, "Blues": 0.2}


@pytest.fixture
def album(user, tmp_path):
    """Three Rock tracks of one album and a fourth that sounds like Jazz, tagged Jazz and
    with a spelling no taxonomy knows."""
    for n in range(3):
        path = tagged_file(tmp_path, "mp3", f"r{n}", n, album=["Tones"], artist=["Sine"])
        arrive(user, path, audio_analysis(ROCK))
    path = tagged_file(
        tmp_path, "mp3", "odd", 9, album=["Tones"], artist=["Sine"], genre=["Jazz", "Sad Jazz+"]
    )
    return arrive(user, path, audio_analysis({"Jazz": 0.9}))


def test_the_track_detail_carries_the_audio_verdict_the_evidence_and_the_flag(alice, album):
    data = alice.get(f"/api/tracks/{album.pk}/").json()
    assert data["audio_genres"][0] == {"name": "Jazz", "parent": None, "confidence": 0.9}
    assert set(data["audio_genres"][0]) == set(data["genres"][0])
    sources = {e["source"]: e for e in data["evidence"]}
    assert set(sources) == {"file_tag", "album"}
    assert sources["file_tag"]["genres"] == [{"name": "Jazz", "confidence": 1.0}]
    assert sources["file_tag"]["unknown"] == ["Sad Jazz+"]
    assert sources["album"]["tracks"] == 3 and sources["album"]["far_from_album"] is True
    assert data["far_from_album"] is True and data["album_distance"] > 0
    assert data["review_choice"] == "" and data["disagreement"] == 0.0


def test_the_api_list_filters_the_review_queue(alice, album):
    assert alice.get("/api/tracks/", {"review": "disagrees"}).json()["results"] == []
    assert alice.get("/api/tracks/", {"review": "nonsense"}).status_code == 400


def test_the_track_page_says_why(alice, album):
    page = alice.get(reverse("track-detail", args=[album.pk])).content.decode()
    assert 'id="why-this-genre"' in page
    assert "Sad Jazz+ (unknown spelling)" in page
    assert "from 3 other tracks of Tones" in page
    assert 'id="far-from-album"' in page
    assert '<svg class="evidence-chart"' in page and "+ album" in page
    assert 'name="choice" value="keep"' in page
