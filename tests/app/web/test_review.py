"""The review queue: the library filters tracks whose audio disagrees with their file's tag
(most strongly first) and uncertain ones; the track page and the dashboard's bulk action
accept Genreweb's genre or keep the file's, and the choice is remembered: a kept tag stays
the verdict after fusing again and after a new analysis, and is proposed as a sample."""

from __future__ import annotations

import pytest
from django.urls import reverse

from classifier.curation.models import Sample
from classifier.engine.filetags import read_tags
from classifier.models import ReviewChoice, Track
from classifier.services import actions, processing
from tests.app.web.evidence_helpers import arrive, audio_analysis, store, tagged_file

pytestmark = pytest.mark.django_db


def jazz_tagged(user, folder, name, seed, probs):
    path = tagged_file(folder, "flac", name, seed, genre=["Jazz"])
    return arrive(user, path, audio_analysis(probs))


@pytest.fixture
def library(user, tmp_path):
    """Three tagged Jazz: one the audio agrees with, two it disagrees with (one strongly),
    and an untagged uncertain one."""
    return {
        "agrees": jazz_tagged(user, tmp_path, "agrees", 1, {"Jazz": 0.9}),
        "mild": jazz_tagged(user, tmp_path, "mild", 2, {"Rock": 0.6, "Jazz": 0.4}),
        "strong": jazz_tagged(user, tmp_path, "strong", 3, {"Metal": 0.97, "Jazz": 0.03}),
        "unsure": arrive(user, tagged_file(tmp_path, "flac", "unsure", 4), audio_analysis({}, 0.1)),
    }


def listed(client, **query) -> list[int]:
    response = client.get(reverse("dashboard"), query)
    assert response.status_code == 200
    return [t.pk for t in response.context["tracks"]]


def test_the_library_filters_disagreements_strongest_first(alice, library):
    assert library["agrees"].disagreement == 0 and library["agrees"].tag_agrees
    assert library["strong"].disagreement > library["mild"].disagreement > 0
    assert listed(alice, review="disagrees") == [library["strong"].pk, library["mild"].pk]
    assert listed(alice, review="uncertain") == [library["unsure"].pk]
    assert b"audio disagrees" in alice.get(reverse("dashboard")).content


def test_keeping_the_file_s_tag_is_remembered_and_wins(alice, user, library):
    track = library["strong"]
    assert track.primary_genre == "Metal"  # the audio outweighed the tag
    response = alice.post(reverse("track-review", args=[track.pk]), {"choice": "keep"})
    assert response.status_code == 302
    track.refresh_from_db()
    assert track.review_choice == ReviewChoice.KEEP
    assert track.primary_genre == "Jazz" and track.tag_values == []
    assert read_tags(track.file.path).genres == ["Jazz"]  # the file keeps its own genre
    sample = Sample.objects.get(source_ref=f"track:{track.pk}")
    assert sample.status == Sample.Status.PROPOSED and sample.genre_names() == ["Jazz"]
    # Fusing again (another track of the library arrives) and analysing again keep it.
    processing.refuse_tracks([track.pk])
    assert Track.objects.get(pk=track.pk).primary_genre == "Jazz"
    assert actions.reanalyse(Track.objects.filter(pk=track.pk)) == [track.pk]
    track = store(track, audio_analysis({"Metal": 0.97, "Jazz": 0.03}))
    assert track.primary_genre == "Jazz" and track.review_choice == ReviewChoice.KEEP
    assert track.evidence_of("file_tag")["review"] == "keep"
    assert track.pk not in listed(alice, review="disagrees")


def test_accepting_genreweb_s_genre_writes_it_and_sets_the_tag_aside(alice, library):
    track = library["mild"]
    assert track.primary_genre == "Jazz"  # the tag tipped a close call
    alice.post(reverse("track-review", args=[track.pk]), {"choice": "accept"})
    track.refresh_from_db()
    assert track.review_choice == ReviewChoice.ACCEPT
    assert track.primary_genre == "Rock"  # the tag no longer counts
    assert read_tags(track.file.path).genres == track.tag_values
    assert not Sample.objects.filter(source_ref=f"track:{track.pk}").exists()
    assert listed(alice, review="disagrees") == [library["strong"].pk]


def test_the_bulk_action_reviews_the_selection(alice, library):
    chosen = [library["strong"].pk, library["mild"].pk]
    response = alice.post(reverse("bulk"), {"action": "review_keep", "tracks": chosen})
    assert response.status_code == 302
    assert set(Track.objects.filter(pk__in=chosen).values_list("review_choice", flat=True)) == {
        "keep"
    }
    assert Sample.objects.filter(status=Sample.Status.PROPOSED).count() == 2
    assert listed(alice, review="disagrees") == []


def test_another_user_cannot_review_my_track(mallory, library):
    track = library["strong"]
    response = mallory.post(reverse("track-review", args=[track.pk]), {"choice": "keep"})
    assert response.status_code == 404
    assert Track.objects.get(pk=track.pk).review_choice == ""
