"""The domain functions behind the tasks and views, run without a broker."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from classifier.engine.files import sha256_of
from classifier.engine.filetags import read_tags, write_genres
from classifier.models import Stage, Status, Track
from classifier.services import actions, downloads, intake, processing
from classifier.tasks import queue_analyses, requeue_stale_tracks
from tests.audiofiles import CLIP_SECONDS, clip_excerpt, make_audio_file

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------- intake


def test_upload_is_stored_hashed_and_queued_on_commit(
    user, make_upload, django_capture_on_commit_callbacks
):
    upload = make_upload("flac")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        taken = intake.accept_upload(user, upload)
        queue_analyses(taken.to_analyse)
    track = taken.track
    assert taken.created and taken.to_analyse == [track.pk]
    assert len(callbacks) == 1  # one analysis queued, and only once the row is committed
    assert track.status == Status.PENDING and track.stage == Stage.QUEUED
    assert track.original_name == upload.name
    assert track.size == upload.size
    stored = Path(track.file.path)
    upload.seek(0)
    assert stored.read_bytes() == upload.read()
    assert track.sha256 == sha256_of(stored)
    assert f"tracks/{user.pk}/" in track.file.name  # one folder per user
    assert track.audio_format == "flac"


def test_tags_of_the_file_are_read_at_upload(user, audio_dir, django_capture_on_commit_callbacks):
    path = make_audio_file(audio_dir, "mp3", seconds=2)
    write_genres(path, ["Ambient"], policy="replace")
    import mutagen.id3

    tags = mutagen.id3.ID3(path)
    tags.add(mutagen.id3.TIT2(encoding=3, text=["Night Drive"]))
    tags.add(mutagen.id3.TPE1(encoding=3, text=["The Testers"]))
    tags.add(mutagen.id3.TALB(encoding=3, text=["Fixtures"]))
    tags.save(path)
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(user, SimpleUploadedFile(path.name, path.read_bytes())).track
    assert (track.title, track.artist, track.album) == ("Night Drive", "The Testers", "Fixtures")
    assert track.genres_before == ["Ambient"]


def test_same_content_twice_is_recognised(
    user, other_user, make_upload, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = intake.accept_upload(user, make_upload(seed=1))
        again = intake.accept_upload(user, make_upload(seed=1, name="renamed"))
        theirs = intake.accept_upload(other_user, make_upload(seed=1))
        for taken in (first, again, theirs):
            queue_analyses(taken.to_analyse)
    assert first.created and not again.created
    assert again.track.pk == first.track.pk
    assert theirs.created and theirs.track.pk != first.track.pk  # per user, not global
    assert len(callbacks) == 2
    assert Track.objects.filter(owner=user).count() == 1


def test_not_audio_is_refused_with_a_reason(user):
    fake = SimpleUploadedFile("song.mp3", b"<html>definitely not a song</html>" * 50)
    with pytest.raises(intake.UploadRefused) as refused:
        intake.accept_upload(user, fake)
    assert "song.mp3" in str(refused.value)
    assert refused.value.status == 400
    assert not Track.objects.exists()


def test_empty_file_is_refused(user):
    with pytest.raises(intake.UploadRefused, match="empty"):
        intake.accept_upload(user, SimpleUploadedFile("x.flac", b""))


def test_size_limit_is_configurable(user, make_upload, settings):
    settings.GENREWEB_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.wav", b"\0" * (1024 * 1024 + 1))
    with pytest.raises(intake.UploadRefused, match="limit is 1 MB") as refused:
        intake.accept_upload(user, big)
    assert refused.value.status == 413
    with pytest.raises(intake.UploadRefused):
        intake.check_request_size(str(2 * 1024 * 1024))
    intake.check_request_size(str(500 * 1024))  # under the limit: no error


def test_default_limit_is_200_mb(settings):
    assert settings.GENREWEB_MAX_UPLOAD_MB == 200
    assert intake.max_upload_bytes() == 200 * 1024 * 1024


# ---------------------------------------------------------------- processing


@pytest.fixture
def processed_track(user, gtzan_dir, clip_dir, django_capture_on_commit_callbacks) -> Track:
    """A classical clip, uploaded and analysed by process_track and the real engine (no broker)."""
    clip = clip_excerpt(gtzan_dir, clip_dir, "classical", 1)
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(user, SimpleUploadedFile(clip.name, clip.read_bytes())).track
    assert processing.process_track(track.pk) == "done", Track.objects.get(pk=track.pk).error
    track.refresh_from_db()
    return track


def test_analysis_stores_verdict_timeline_embedding_and_tags(processed_track):
    track = processed_track
    assert track.status == Status.DONE and track.stage == Stage.DONE and track.error == ""
    assert track.primary_genre == "Classical"
    assert track.confidence == pytest.approx(track.genres[0]["confidence"], abs=1e-4)
    assert track.confidence >= 0.35 and not track.uncertain
    assert len(track.embedding) == 200 and all(isinstance(x, float) for x in track.embedding)
    assert track.model_version.startswith("musicnn-msd-")
    assert len(track.timeline) == track.verdict["chunks"] == 3
    assert track.timeline[1]["start"] > track.timeline[0]["start"]
    assert all(0 <= p <= 1 for p in track.timeline[0]["probabilities"].values())
    assert set(track.verdict["probabilities"]) >= {"Classical", "Jazz", "Metal", "R&B/Soul"}
    assert track.genre_index.startswith("|Classical|")
    assert track.styles and track.duration == pytest.approx(CLIP_SECONDS, abs=0.1)
    # The fill policy wrote the genre into the stored file, since it had none.
    assert track.genres_before == []
    assert track.genres_after == track.tag_values == ["Classical"]
    file_tags = read_tags(track.file.path)
    assert file_tags.genres == ["Classical"]
    assert file_tags.provenance["model"] == track.model_version
    assert track.analysed_at is not None and track.attempts == 1


def test_analysed_tracks_of_the_other_tests_are_what_processing_stores(
    processed_track, make_analysed_track, other_user
):
    # The other tests' analysed tracks reuse one analysis: stored as process_track stores it.
    made = make_analysed_track(other_user)
    for name in (
        "status",
        "stage",
        "progress",
        "error",
        "verdict",
        "timeline",
        "model_version",
        "primary_genre",
        "confidence",
        "uncertain",
        "duration",
        "styles",
        "genres_before",
        "genres_after",
        "tag_policy",
        "attempts",
        "original_name",
    ):
        assert getattr(made, name) == getattr(processed_track, name), name
    assert made.embedding == pytest.approx(processed_track.embedding, abs=1e-5)
    assert read_tags(made.file.path).genres == read_tags(processed_track.file.path).genres
    assert made.analysed_at is not None


def test_a_track_is_claimed_once(pending_track):
    first = processing.claim_track(pending_track.pk, task_id="task-a")
    assert first is not None
    assert processing.claim_track(pending_track.pk, task_id="task-b") is None
    assert processing.claim_track(pending_track.pk) is None
    # A redelivery of the message that claimed it (its worker died) takes it over.
    again = processing.claim_track(pending_track.pk, task_id="task-a")
    assert again is not None and again != first
    # The first attempt's claim is void: it can no longer store anything.
    assert not processing.update_claimed(pending_track.pk, first, status=Status.DONE)
    assert Track.objects.get(pk=pending_track.pk).attempts == 2


def test_done_track_is_not_analysed_again_by_a_second_message(analysed_track):
    before = Track.objects.get(pk=analysed_track.pk)
    assert processing.process_track(analysed_track.pk, task_id="late-duplicate") == "skipped"
    after = Track.objects.get(pk=analysed_track.pk)
    assert after.analysed_at == before.analysed_at and after.attempts == before.attempts


def test_missing_track_is_skipped():
    assert processing.process_track(987654) == "skipped"


def test_undecodable_file_fails_with_a_message(pending_track):
    # The stored file is damaged after the upload check (a disk error, say).
    Path(pending_track.file.path).write_bytes(b"\x00garbage" * 100)
    assert processing.process_track(pending_track.pk) == "failed"
    track = Track.objects.get(pk=pending_track.pk)
    assert track.status == Status.FAILED and track.stage == Stage.FAILED
    assert pending_track.original_name in track.error or "audio" in track.error.lower()
    assert "Traceback" not in track.error


def test_worker_that_keeps_dying_gives_up(pending_track):
    for n in range(processing.MAX_ATTEMPTS):
        assert processing.claim_track(pending_track.pk, task_id="same-message") is not None, n
    assert processing.claim_track(pending_track.pk, task_id="same-message") is None
    track = Track.objects.get(pk=pending_track.pk)
    assert track.status == Status.FAILED and "3 times" in track.error


def test_progress_is_written_by_stage_and_now_and_then(pending_track):
    token = processing.claim_track(pending_track.pk)
    now = [100.0]
    report = processing.progress_reporter(pending_track.pk, token, clock=lambda: now[0])
    report("decoding", 0.5)  # a new stage: written at once
    assert Track.objects.get(pk=pending_track.pk).progress == 0.5
    report("decoding", 0.55)  # under a tenth: not worth a write
    assert Track.objects.get(pk=pending_track.pk).progress == 0.5
    report("decoding", 0.8)  # a tenth and more, but too soon after the last write
    assert Track.objects.get(pk=pending_track.pk).progress == 0.5
    now[0] += processing.PROGRESS_INTERVAL
    report("decoding", 0.85)
    assert Track.objects.get(pk=pending_track.pk).progress == 0.85
    report("analysing", 0.0)
    track = Track.objects.get(pk=pending_track.pk)
    assert (track.stage, track.progress) == (Stage.ANALYSING, 0.0)


def test_stuck_track_is_queued_again(pending_track, django_capture_on_commit_callbacks, settings):
    token = processing.claim_track(pending_track.pk, task_id="lost")
    assert token is not None
    assert processing.requeue_stale() == []  # just claimed: not stuck
    earlier = timezone.now() - timedelta(seconds=settings.GENREWEB_STALE_AFTER + 1)
    Track.objects.filter(pk=pending_track.pk).update(claimed_at=earlier)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert requeue_stale_tracks() == [pending_track.pk]  # the beat task queues it
    assert len(callbacks) == 1
    track = Track.objects.get(pk=pending_track.pk)
    assert track.status == Status.PENDING and track.claim_token is None
    # The lost worker, should it come back, can no longer store a result.
    assert not processing.update_claimed(pending_track.pk, token, status=Status.DONE)
    assert processing.process_track(pending_track.pk) in ("done", "failed")


def test_pending_track_whose_message_was_lost_is_sent_again(
    pending_track, settings, django_capture_on_commit_callbacks
):
    earlier = timezone.now() - timedelta(seconds=settings.GENREWEB_STALE_AFTER + 1)
    Track.objects.filter(pk=pending_track.pk).update(updated_at=earlier)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert requeue_stale_tracks() == [pending_track.pk]  # the beat task queues them
    assert len(callbacks) == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert requeue_stale_tracks() == []  # sent once per stale period
    assert callbacks == []


# ---------------------------------------------------------------- library actions


def test_reanalyse_queues_finished_tracks_only(
    analysed_track, pending_track, django_capture_on_commit_callbacks
):
    processing.claim_track(pending_track.pk)  # now processing
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = actions.reanalyse(Track.objects.all())
        queue_analyses(queued)
    assert queued == [analysed_track.pk] and len(callbacks) == 1
    assert Track.objects.get(pk=analysed_track.pk).status == Status.PENDING
    assert Track.objects.get(pk=pending_track.pk).status == Status.PROCESSING


def test_retag_with_each_policy(analysed_track):
    path = analysed_track.file.path
    write_genres(path, ["Soundtrack"], policy="replace")
    tracks = Track.objects.filter(pk=analysed_track.pk)
    result = actions.retag(tracks, "fill")  # the file has a genre: fill leaves it
    assert (result.written, result.unchanged) == (0, 1)
    assert read_tags(path).genres == ["Soundtrack"]
    assert Track.objects.get(pk=analysed_track.pk).genres_after == ["Soundtrack"]
    result = actions.retag(tracks, "merge")
    assert (result.written, result.unchanged) == (1, 0)
    assert read_tags(path).genres == ["Soundtrack", "Classical"]
    actions.retag(tracks, "replace")
    assert read_tags(path).genres == ["Classical"]
    track = Track.objects.get(pk=analysed_track.pk)
    assert track.genres_after == ["Classical"] and track.tag_policy == "replace"


def test_uncertain_verdict_never_empties_the_files_genres(analysed_track, settings):
    Track.objects.filter(pk=analysed_track.pk).update(
        verdict={**analysed_track.verdict, "tag_values": []}, uncertain=True
    )
    write_genres(analysed_track.file.path, ["Soundtrack"], policy="replace")
    result = actions.retag(Track.objects.filter(pk=analysed_track.pk), "replace")
    assert result.skipped == 1
    assert read_tags(analysed_track.file.path).genres == ["Soundtrack"]


def test_zip_holds_the_tagged_files_under_readable_names(analysed_track, pending_track):
    Track.objects.filter(pk=analysed_track.pk).update(title="Adagio", artist="Orchestra")
    buffer = io.BytesIO()
    count = downloads.write_zip(Track.objects.order_by("id"), buffer)
    assert count == 2
    with zipfile.ZipFile(buffer) as archive:
        names = archive.namelist()
        assert names[0] == "Orchestra_-_Adagio.flac"
        assert archive.read(names[0]) == Path(analysed_track.file.path).read_bytes()
        assert names[1] == pending_track.original_name


def test_delete_removes_rows_and_files(pending_track, media_root):
    path = Path(pending_track.file.path)
    assert actions.delete_tracks(Track.objects.all()) == 1
    assert not path.exists() and not Track.objects.exists()
    assert not any(p.is_file() for p in Path(media_root).rglob("*"))
