"""A multi-genre verdict through the whole web app: the stored verdict, the tags written (top
level only, or genre and style), the library filter (Electronic finds House, a second genre
counts), the chart, ?genre= in the API and the track page.

The head is a real head file whose weights are chosen, not learned: whatever the audio, it
says Electronic 0.9, House 0.7 (a style of Electronic) and Rock 0.5, so every assertion below
follows from the app's own logic and none from what a trained model happens to hear.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from rest_framework.test import APIClient

from classifier.curation.models import Genre
from classifier.engine.filetags import read_tags
from classifier.engine.head import HeadInfo, save_head
from classifier.engine.headnet import TrainableHead
from classifier.models import Status, Track
from classifier.services import intake, processing, taxonomy
from classifier.services.library import genre_distribution
from tests.audiofiles import clip_excerpt

pytestmark = pytest.mark.django_db

GENRES = ["Electronic", "House", "Rock"]
SAYS = [0.9, 0.7, 0.5]


@pytest.fixture
def rigged_head(settings, tmp_path: Path) -> Path:
    head = TrainableHead(200, len(GENRES), multi_label=True, parents=[-1, 0, -1])
    linear = head.net[1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor([math.log(p / (1 - p)) for p in SAYS]))
    info = HeadInfo(
        genres=GENRES,
        trained_on="chosen weights (test)",
        tag_spelling={g: g for g in GENRES},
        activation="sigmoid",
        parents={"House": "Electronic"},
    )
    path = tmp_path / "rigged.safetensors"
    save_head(head, info, path)
    settings.GENREWEB_HEAD_PATH = str(path)
    return path


@pytest.fixture
def upload(gtzan_dir, clip_dir, django_capture_on_commit_callbacks):
    """`upload(owner)`: a real music excerpt uploaded and analysed by the worker's code."""
    clip = clip_excerpt(gtzan_dir, clip_dir, "classical", 1)

    def make(owner) -> Track:
        with django_capture_on_commit_callbacks(execute=False):
            track = intake.accept_upload(owner, SimpleUploadedFile(clip.name, clip.read_bytes()))
        assert processing.process_track(track.track.pk) == "done"
        return Track.objects.get(pk=track.track.pk)

    return make


def test_the_verdict_and_the_tags_of_a_multi_genre_track(
    rigged_head, upload, user, other_user, settings
):
    track = upload(user)
    assert track.primary_genre == "Electronic" and not track.uncertain
    assert [(g["name"], g["parent"]) for g in track.genres] == [
        ("Electronic", None),
        ("House", "Electronic"),
        ("Rock", None),
    ]
    assert [g["confidence"] for g in track.genres] == pytest.approx(SAYS, abs=1e-3)
    # Top-level genres only, by default: the style stays out of the file.
    assert track.genres_after == ["Electronic", "Rock"]
    assert read_tags(track.file.path).genres == ["Electronic", "Rock"]
    assert track.genre_index == "|Electronic|House|Rock|"

    settings.GENREWEB_TAG_STYLES = True
    settings.GENREWEB_TAG_MAX = 2
    styled = upload(other_user)
    assert read_tags(styled.file.path).genres == ["Electronic", "House"]


@pytest.fixture
def library(rigged_head, upload, user) -> dict[str, Track]:
    house = upload(user)
    rock = Track.objects.create(
        owner=user,
        original_name="riff.mp3",
        sha256="r" * 64,
        size=1,
        title="Riff",
        status=Status.DONE,
        primary_genre="Rock",
        genre_index="|Rock|",
        confidence=0.8,
        verdict={"genres": [{"name": "Rock", "parent": None, "confidence": 0.8}]},
    )
    return {"house": house, "rock": rock}


def listed(client, genre: str) -> set[int]:
    response = client.get(reverse("dashboard"), {"genre": genre})
    assert response.status_code == 200
    return {t.pk for t in response.context["tracks"]}


def test_the_library_filter_follows_the_taxonomy(alice, library):
    house, rock = library["house"].pk, library["rock"].pk
    assert listed(alice, "Electronic") == {house}
    assert listed(alice, "House") == {house}
    assert listed(alice, "Rock") == {house, rock}  # Rock is the House track's second genre


def test_the_chart_counts_primary_genres(user, library):
    counts = {c.genre: c.count for c in genre_distribution(Track.objects.filter(owner=user))}
    assert counts == {"Electronic": 1, "Rock": 1}


def test_the_api_filters_by_style_and_names_parents(user, library):
    api = APIClient()
    api.force_authenticate(user)
    found = api.get("/api/tracks/", {"genre": "House"})
    assert found.status_code == 200, found.content
    assert [t["id"] for t in found.json()["results"]] == [library["house"].pk]
    detail = api.get(f"/api/tracks/{library['house'].pk}/").json()
    assert detail["genres"][1] == {"name": "House", "parent": "Electronic", "confidence": 0.7}


def test_the_track_page_shows_the_style_under_its_genre(alice, library):
    page = alice.get(reverse("track-detail", args=[library["house"].pk])).content.decode()
    assert 'title="a style of Electronic">· Electronic</span>' in page


def test_staff_spelling_in_the_genre_table_is_what_files_get(rigged_head, upload, user):
    # The genre table is seeded from the taxonomy and editable: a respelling reaches the tags
    # and the labels without retraining.
    electronic = Genre.objects.get(name="Electronic")
    electronic.tag_spelling = "Electronica"
    electronic.save()  # as the admin saves it
    track = upload(user)
    assert read_tags(track.file.path).genres == ["Electronica", "Rock"]
    assert taxonomy.current().label("Electronic") == "Electronica"
    assert taxonomy.current().family("Electronic") >= {"Electronic", "House", "Techno"}
