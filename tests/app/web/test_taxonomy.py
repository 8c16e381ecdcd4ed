"""The library speaks the active model's genres: a promoted head's new genre shows everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse
from rest_framework.test import APIClient

from classifier.curation.models import ModelVersion
from classifier.curation.services.versions import promote
from classifier.engine.head import HeadInfo, save_head
from classifier.engine.headnet import TrainableHead
from classifier.engine.weights import model_version
from classifier.forms import LibraryFilterForm
from classifier.models import Status, Track
from classifier.services import taxonomy

pytestmark = pytest.mark.django_db

GENRES = ["Classical", "Jazz", "Vaporwave"]  # Vaporwave: a genre the bundled head lacks


@pytest.fixture
def house_head() -> ModelVersion:
    """A promoted model version whose head knows Vaporwave (its weights are never run here)."""
    info = HeadInfo(
        genres=GENRES,
        trained_on="test",
        tag_spelling={"Classical": "Classical", "Jazz": "Jazz", "Vaporwave": "Vaporwave"},
    )
    name = "curation/heads/house-test.safetensors"
    version = save_head(TrainableHead(200, len(GENRES)), info, Path(default_storage.path(name)))
    row = ModelVersion.objects.create(
        version=version,
        model=model_version(version),
        head=name,
        genres=GENRES,
        tag_spelling=info.tag_spelling,
    )
    promote(row)
    return row


@pytest.fixture
def house_track(user, house_head) -> Track:
    return Track.objects.create(
        owner=user,
        original_name="club.mp3",
        sha256="h" * 64,
        size=1,
        title="Club Night",
        status=Status.DONE,
        primary_genre="Vaporwave",
        confidence=0.9,
        uncertain=False,
        model_version=house_head.model,
        verdict={
            "genres": [{"name": "Vaporwave", "confidence": 0.9}],
            "probabilities": {"Classical": 0.05, "Jazz": 0.05, "Vaporwave": 0.9},
        },
    )


def filter_options(page: str) -> list[str]:
    select = re.search(r'<select name="genre".*?</select>', page, re.DOTALL)
    assert select is not None
    return re.findall(r'<option value="([^"]*)"', select.group(0))


def form_genres() -> list[str]:
    return [value for value, _ in LibraryFilterForm().fields["genre"].choices]


def test_the_bundled_genres_before_any_promotion():
    options = form_genres()
    assert "Jazz" in options and "Hip-Hop" in options and "Alternative Rock" in options
    assert "Vaporwave" not in options
    assert taxonomy.current().label("R&B/Soul") == "R&B/Soul"


def test_a_promoted_genre_is_in_the_filter_the_chart_and_the_api(alice, user, house_track):
    page = alice.get(reverse("dashboard")).content.decode()
    assert filter_options(page) == ["", "Classical", "Jazz", "Vaporwave", "uncertain"]
    # The chart: a row for Vaporwave, with its tag spelling and a colour of its own.
    assert '<a class="dist-label" href="?genre=Vaporwave">Vaporwave</a>' in page
    colour = taxonomy.genre_colour("Vaporwave")
    assert re.fullmatch(r"#[0-9a-f]{6}", colour) and colour != taxonomy.UNCERTAIN_COLOUR
    assert f"background: {colour}" in page
    # The filter itself.
    filtered = alice.get(reverse("dashboard"), {"genre": "Vaporwave"}).content.decode()
    assert "Club Night" in filtered
    # The API accepts ?genre=Vaporwave and finds the track.
    api = APIClient()
    api.force_authenticate(user)
    response = api.get("/api/tracks/", {"genre": "Vaporwave"})
    assert response.status_code == 200, response.content
    assert [t["id"] for t in response.json()["results"]] == [house_track.pk]


def test_a_genre_the_active_model_lacks_is_refused_by_the_api(user):
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/tracks/", {"genre": "Vaporwave"}).status_code == 400
    assert api.get("/api/tracks/", {"genre": "Jazz"}).status_code == 200


def test_rolling_back_returns_to_the_bundled_taxonomy(house_head):
    assert "Vaporwave" in form_genres()  # the choices follow the active model, form by form
    promote(None, rollback=True)
    assert "Vaporwave" not in form_genres() and "Hip-Hop" in form_genres()


def test_every_genre_has_a_stable_colour():
    assert taxonomy.genre_colour("Jazz") == taxonomy.KNOWN_COLOURS["jazz"]
    assert taxonomy.genre_colour("R&B/Soul") == taxonomy.KNOWN_COLOURS["randbsoul"]
    # A style is a shade of its genre's colour: House near Electronic, not Electronic itself.
    assert taxonomy.genre_colour("House") not in (taxonomy.genre_colour("Electronic"), "")
    assert taxonomy.genre_colour("Drum and bass") == taxonomy.genre_colour("Drum and bass")
    assert taxonomy.genre_colour("house") != taxonomy.genre_colour("techno")
    assert taxonomy.genre_colour("") == taxonomy.UNCERTAIN_COLOUR
