"""Temporary files left by killed processes: tag writes' copies beside stored tracks, and
upload files of requests whose web worker died."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from classifier import tasks
from classifier.engine.files import TEMP_SUFFIX, temporary_prefix
from classifier.models import Track
from classifier.services import cleanup, intake
from classifier.uploadhandlers import LockedTemporaryFileUploadHandler
from tests.lockholder import Holder, age

# The web tests' fixtures (these tests keep no conftest of their own).

HOUR = cleanup.STALE_UPLOAD_SECONDS


@pytest.fixture
def upload_dir(settings, tmp_path: Path) -> Path:
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "uploads")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    return Path(settings.FILE_UPLOAD_TEMP_DIR)


def made(path: Path, seconds_old: float = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return age(path, seconds_old)


def stray_copy(track: Track, seconds_old: float = 0, tag: str = "k1ll3d") -> Path:
    """What a tag write killed mid-way leaves beside the track's file."""
    stored = Path(track.file.path)
    return made(stored.parent / f"{temporary_prefix(stored)}{tag}{TEMP_SUFFIX}", seconds_old)


def test_abandoned_upload_files_older_than_an_hour_are_removed(upload_dir):
    abandoned = made(upload_dir / "tmpab_cd123.upload.flac", HOUR + 60)
    no_extension = made(upload_dir / "tmpzzzzzzzz.upload", HOUR + 60)
    recent = made(upload_dir / "tmpefgh4567.upload.mp3", HOUR - 60)
    not_ours = [
        made(upload_dir / name, HOUR + 60)
        for name in (
            "tmpabcd1234.txt",
            "notes.upload.flac",
            "tmpabc.upload.flac",
            "tmpABCDEFGH.upload",
        )
    ]
    assert sorted(cleanup.remove_stale_uploads()) == sorted([abandoned, no_extension])
    assert recent.exists() and all(path.exists() for path in not_ours)


def test_an_upload_file_another_live_process_holds_stays(upload_dir):
    path = made(upload_dir / "tmpheld0001.upload.flac")
    holder = Holder.holding(path)
    try:
        age(path, 10 * HOUR)
        assert cleanup.remove_stale_uploads() == []
        assert cleanup.remove_stale_uploads(older_than=0) == []
        assert path.exists()
    finally:
        holder.release()
    assert cleanup.remove_stale_uploads() == [path]  # its process gone, it is abandoned


def test_the_system_temporary_folder_without_an_upload_folder(settings, tmp_path, monkeypatch):
    settings.FILE_UPLOAD_TEMP_DIR = None
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert cleanup.upload_temp_dir() == tmp_path
    abandoned = made(tmp_path / "tmpsys00001.upload.ogg", HOUR + 1)
    assert cleanup.remove_stale_uploads() == [abandoned]


def test_the_upload_handler_holds_its_file_while_the_request_lives(upload_dir):
    handler = LockedTemporaryFileUploadHandler()
    handler.new_file("file", "song.flac", "audio/flac", 10)
    handler.receive_data_chunk(b"fLaC", 0)
    path = Path(handler.file.temporary_file_path())
    assert path.parent == upload_dir and cleanup.is_upload_temporary(path.name)
    age(path, 10 * HOUR)
    assert cleanup.remove_stale_uploads(older_than=0) == []
    handler.file.close()
    assert not path.exists()


def test_an_in_memory_uploads_copy_is_held_too(upload_dir, make_upload):
    with intake.local_copy(make_upload()) as path:
        assert path.parent == upload_dir and cleanup.is_upload_temporary(path.name)
        assert cleanup.remove_stale_uploads(older_than=0) == []
    assert not path.exists()


@pytest.mark.django_db
def test_deleting_a_track_removes_its_stray_copies(alice, pending_track, media_root):
    killed = stray_copy(pending_track)  # just now: no age spares it, the track goes
    neighbour = Path(pending_track.file.path).parent / f".other.flac.x{TEMP_SUFFIX}"
    made(neighbour)
    response = alice.delete(reverse("api:track-detail", args=[pending_track.pk]))
    assert response.status_code == 204
    assert not killed.exists() and not Track.objects.exists()
    assert neighbour.exists()  # not this track's


@pytest.mark.django_db
def test_deleting_leaves_no_folder_behind(alice, pending_track, media_root):
    stray_copy(pending_track, 60)
    alice.post(reverse("track-delete", args=[pending_track.pk]))
    assert not Track.objects.exists()
    assert not any(Path(media_root).rglob("*")), list(Path(media_root).rglob("*"))


@pytest.mark.django_db
def test_the_sweep_task_cleans_media_and_uploads(pending_track, upload_dir):
    stale = stray_copy(pending_track, 10 * 60)
    young = stray_copy(pending_track, 0, tag="young")
    abandoned = made(upload_dir / "tmpgone0001.upload.wav", HOUR + 1)
    assert tasks.remove_stale_temporaries() == 2
    assert not stale.exists() and not abandoned.exists()
    assert young.exists() and Path(pending_track.file.path).exists()


def test_a_starting_worker_sweeps_and_beat_sweeps_every_hour(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.requeue_stale_tracks, "delay", lambda: sent.append("tracks"))
    monkeypatch.setattr(tasks.remove_stale_temporaries, "delay", lambda: sent.append("files"))
    tasks._sweep_on_start()
    assert sent == ["tracks", "files"]
    schedule = django_settings.CELERY_BEAT_SCHEDULE["remove-stale-temporaries"]
    assert schedule == {"task": tasks.REMOVE_STALE_TEMPORARIES, "schedule": 3600.0}
