"""Albums and artists pooled within one owner's library as tracks arrive: the tenth track
changes the first nine's album evidence without their audio being analysed again; a track
unlike its album is flagged; empty album names do not pool; a big album costs one pass."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from classifier import tasks
from classifier.models import Status, Track
from classifier.services import actions, evidence, processing
from tests.app.web.evidence_helpers import MODEL, arrive, audio_analysis, tagged_file, upload

pytestmark = pytest.mark.django_db

ROCK = {"Rock": 0.7, "Blues": 0.2}
JAZZ = {"Jazz": 0.95}


def album_track(user, folder, n, probs, album="Tones", artist="Sine", **tags):
    path = tagged_file(folder, "flac", f"t{n}", seed=n, album=[album], artist=[artist], **tags)
    return arrive(user, path, audio_analysis(probs))


def test_the_tenth_track_changes_the_album_evidence_of_the_first_nine(user, tmp_path):
    first = [album_track(user, tmp_path, n, ROCK) for n in range(9)]
    before = {t.pk: Track.objects.get(pk=t.pk) for t in first}
    for track in before.values():
        assert track.evidence_of("album")["tracks"] == 8
    tenth = album_track(user, tmp_path, 9, JAZZ)
    assert tenth.evidence_of("album")["tracks"] == 9
    assert tenth.evidence_of("album")["genres"][0]["name"] == "Rock"
    for pk, old in before.items():
        new = Track.objects.get(pk=pk)
        album = new.evidence_of("album")
        assert album["tracks"] == 9
        assert album != old.evidence_of("album")  # the Jazz track moved the album's mean
        assert new.verdict["probabilities"]["Jazz"] > old.verdict["probabilities"]["Jazz"]
        # Fused again from the stored audio verdict: the audio was not analysed again.
        assert new.analysed_at == old.analysed_at and new.attempts == old.attempts == 1
        assert new.audio_verdict == old.audio_verdict


def test_a_track_unlike_its_album_is_flagged(user, tmp_path):
    for n in range(3):
        album_track(user, tmp_path, n, ROCK)
    odd = album_track(user, tmp_path, 3, JAZZ)
    assert odd.far_from_album and odd.album_distance > 0.17
    assert odd.evidence_of("album")["far_from_album"] is True
    assert not Track.objects.get(pk=Track.objects.exclude(pk=odd.pk).first().pk).far_from_album


def test_the_artist_s_tracks_off_the_album_are_the_artist_s_evidence(user, tmp_path):
    for n in range(2):
        album_track(user, tmp_path, n, ROCK, album="First")
    track = album_track(user, tmp_path, 5, JAZZ, album="Second")
    assert track.evidence_of("album") is None  # alone on its album
    assert track.evidence_of("artist")["tracks"] == 2
    assert track.evidence_of("artist")["genres"][0]["name"] == "Rock"


def test_empty_album_names_do_not_pool(user, tmp_path):
    a = album_track(user, tmp_path, 0, ROCK, album="  ", artist="Nobody")
    b = album_track(user, tmp_path, 1, JAZZ, album="  ", artist="Nobody")
    a.refresh_from_db()
    assert a.album_key == b.album_key == ""
    assert a.evidence_of("album") is None and b.evidence_of("album") is None
    assert not a.far_from_album and not b.far_from_album


def test_another_owner_s_album_does_not_pool(user, other_user, tmp_path):
    album_track(user, tmp_path, 0, ROCK)
    theirs = album_track(other_user, tmp_path / "other", 1, JAZZ)
    assert theirs.evidence_of("album") is None and theirs.evidence_of("artist") is None


def test_an_arrival_queues_one_task_for_its_album(
    user, tmp_path, django_capture_on_commit_callbacks
):
    mates = [album_track(user, tmp_path, n, ROCK) for n in range(3)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.queue_refusing(evidence.mates_to_refuse(mates[0].pk))
    assert len(callbacks) == 1
    assert sorted(evidence.mates_to_refuse(mates[0].pk)) == sorted(t.pk for t in mates[1:])


def test_a_big_album_is_fused_again_in_one_pass(user, settings, django_assert_max_num_queries):
    """500 tracks of one album: fusing them all again reads them once (plus one update per
    track), and a new arrival's own fusion takes a fixed number of queries."""
    settings.GENREWEB_TAG_MIN_CONFIDENCE = 1.0  # nothing to write: no files needed
    size = 500
    stored = audio_analysis(ROCK)
    audio = evidence.audio_verdict(stored)
    file = {"values": [], "artist": "Sine", "album": "Big", "album_artist": None, "notes": []}
    rows = [
        Track(
            owner=user,
            file=f"tracks/{user.pk}/big/{n}.flac",
            original_name=f"{n}.flac",
            sha256=f"{n:064d}",
            size=1,
            status=Status.DONE,
            verdict=audio,
            audio_verdict=audio,
            fusion={"file": file},
            album_key="sine\x1fbig",
            artist_key="sine",
            model_version=MODEL,
        )
        for n in range(size)
    ]
    Track.objects.bulk_create(rows)
    ids = list(Track.objects.filter(owner=user).values_list("pk", flat=True))
    # One update a track, plus a handful: the context, the tag reliability, the catalog.
    with django_assert_max_num_queries(size + 6):
        assert processing.refuse_tracks(ids) == size
    track = Track.objects.get(pk=ids[0])
    assert track.evidence_of("album")["tracks"] == size - 1
    newcomer = Track.objects.create(
        owner=user,
        file=ContentFile(b"", name="new.flac"),
        original_name="new.flac",
        sha256="f" * 64,
        size=1,
        fusion={"file": file},
    )
    target = evidence.Target(newcomer.pk, stored, evidence.evidence_from_json(file))
    with django_assert_max_num_queries(4):  # context, reliability, catalog
        outcome = evidence.fuse_targets(user.pk, [target])[newcomer.pk]
    assert outcome.fields["evidence"][0]["tracks"] == size


def test_deleting_a_track_fuses_its_album_again_without_it(
    alice, user, tmp_path, django_capture_on_commit_callbacks
):
    kept = [album_track(user, tmp_path, n, ROCK) for n in range(3)]
    odd = album_track(user, tmp_path, 3, JAZZ)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice.post(reverse("track-delete", args=[odd.pk]))
    assert response.status_code == 302 and len(callbacks) == 1  # one task for the album
    processing.refuse_tracks([t.pk for t in kept])  # what that task does
    for track in kept:
        assert Track.objects.get(pk=track.pk).evidence_of("album")["tracks"] == 2


def test_the_analysis_task_queues_one_fusion_of_its_album(
    user, tmp_path, django_capture_on_commit_callbacks
):
    """The real task, in process, with the real engine: an analysis queues its album's other
    tracks once, and theirs are fused, not analysed, again."""
    path = tagged_file(tmp_path, "flac", "real", 5, album=["Tones"], artist=["Sine"])
    track = upload(user, path)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.analyse_track.apply(args=[track.pk]).get() == "done"
    assert callbacks == []  # alone on its album: nothing to fuse again
    model = Track.objects.get(pk=track.pk).model_version
    mate = arrive(
        user,
        tagged_file(tmp_path, "flac", "mate", 6, album=["Tones"], artist=["Sine"]),
        audio_analysis(ROCK, model=model),
    )
    assert actions.reanalyse(Track.objects.filter(pk=track.pk)) == [track.pk]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert tasks.analyse_track.apply(args=[track.pk]).get() == "done"
    assert len(callbacks) == 1
    processing.refuse_tracks([mate.pk])  # what the queued task does
    again = Track.objects.get(pk=mate.pk)
    assert again.evidence_of("album")["tracks"] == 1
    assert again.analysed_at == mate.analysed_at and again.attempts == 1
    assert Track.objects.get(pk=track.pk).evidence_of("album")["tracks"] == 1
