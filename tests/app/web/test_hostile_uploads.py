"""Uploads and track pages of files that broke the decoder: 7.1 audio, WAV headers FFmpeg
has no decoder for, junk after the audio, and a failed track's spectrogram."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from classifier.engine import isolation
from classifier.models import Status, Track
from classifier.services import intake, processing
from tests.audiofiles import make_audio_file
from tests.engine import bombs
from tests.engine.hostile import (
    assert_decodes_in_child,
    channel_signals,
    impossible_wavs,
    pyav_plane_bug,
    with_tail,
    write_multichannel,
)

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}
# The views only ask whose track it is: pytest-django's admin_user and admin_client serve.


@pytest.fixture(autouse=True)
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def upload_of(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def post(client: Client, path: Path, capture) -> tuple[int, dict]:
    with capture(execute=False):
        response = client.post(reverse("upload"), {"file": upload_of(path)}, **JSON)
    return response.status_code, response.json()


def test_a_7_1_upload_is_accepted(admin_client, tmp_path, django_capture_on_commit_callbacks):
    path = write_multichannel(tmp_path / "surround.flac", channel_signals(8, 48_000), 48_000)
    assert_decodes_in_child(path)  # a decoder that crashes on it fails here, not the run
    status, body = post(admin_client, path, django_capture_on_commit_callbacks)
    assert status == 201 and body["status"] == "pending", body
    assert processing.process_track(body["id"]) == "done"  # the worker analyses it too


def test_wav_headers_without_a_decoder_are_refused_with_a_reason(
    admin_client, tmp_path, django_capture_on_commit_callbacks
):
    for path in impossible_wavs(tmp_path):
        status, body = post(admin_client, path, django_capture_on_commit_callbacks)
        assert status == 400, body
        assert body["error"].startswith(f"{path.name} was refused: it cannot be decoded")
        assert "Traceback" not in body["error"] and "tmp" not in body["error"]
    assert not Track.objects.exists()


def test_a_decoder_crash_refuses_the_upload_and_spares_the_web_worker(
    admin_client, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    # The decoder as it was before the fix crashed on 7.1: that crash, in the checking child.
    monkeypatch.setattr(isolation, "CHECK", pyav_plane_bug)
    path = write_multichannel(tmp_path / "surround.wav", channel_signals(8, 48_000), 48_000)
    assert_decodes_in_child(path)  # were the check in this process, it would not crash here
    status, body = post(admin_client, path, django_capture_on_commit_callbacks)
    assert status == 400 and "the decoder crashed on it (SIGSEGV)" in body["error"]
    assert body["error"].startswith("surround.wav was refused: it cannot be decoded")


def test_junk_after_the_audio_is_accepted_analysed_and_noted(
    admin_user, admin_client, tmp_path, django_capture_on_commit_callbacks
):
    path = with_tail(make_audio_file(tmp_path, "mp3", seconds=4.0), b"\0" * 1024, "junk")
    status, body = post(admin_client, path, django_capture_on_commit_callbacks)
    assert status == 201, body
    assert processing.process_track(body["id"]) == "done"
    track = Track.objects.get(pk=body["id"])
    assert len(track.verdict["warnings"]) == 1 and track.warnings == track.verdict["warnings"]
    assert "1,024 bytes that could not be decoded as audio" in track.warnings[0]
    page = admin_client.get(reverse("track-detail", args=[track.pk]))
    assert page.status_code == 200
    assert "1,024 bytes that could not be decoded as audio" in page.content.decode()
    api = admin_client.get(reverse("api:track-detail", args=[track.pk]))
    assert api.json()["warnings"] == track.warnings


@pytest.fixture
def failed_track(admin_user, tmp_path, django_capture_on_commit_callbacks) -> Track:
    """A track whose file was cut short after it was accepted: its analysis failed."""
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(
            admin_user, upload_of(make_audio_file(tmp_path, "wav", seconds=6.0))
        ).track
    stored = Path(track.file.path)
    stored.write_bytes(stored.read_bytes()[: len(stored.read_bytes()) // 2])
    assert processing.process_track(track.pk) == "failed"
    track.refresh_from_db()
    assert "cut short" in track.error
    return track


def test_a_failed_tracks_spectrogram_is_a_picture_of_the_reason(admin_client, failed_track):
    response = admin_client.get(reverse("track-spectrogram", args=[failed_track.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    assert "no-store" in response["Cache-Control"]


def test_a_failed_tracks_page_shows_the_reason_and_no_broken_picture(admin_client, failed_track):
    response = admin_client.get(reverse("track-detail", args=[failed_track.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert reverse("track-spectrogram", args=[failed_track.pk]) not in page
    assert 'class="muted spectrogram-unavailable"' in page and "cut short" in page


def test_a_spectrogram_waits_for_the_analysis(
    admin_client, admin_user, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(
            admin_user, upload_of(make_audio_file(tmp_path, "flac", seconds=4.0))
        ).track
    waiting = admin_client.get(reverse("track-spectrogram", args=[track.pk]))
    assert waiting.status_code == 200 and waiting["Content-Type"] == "image/png"
    assert "no-store" in waiting["Cache-Control"]
    assert processing.process_track(track.pk) == "done"
    drawn = admin_client.get(reverse("track-spectrogram", args=[track.pk]))
    assert drawn.status_code == 200 and "max-age" in drawn["Cache-Control"]
    assert b"".join(drawn.streaming_content).startswith(b"\x89PNG")


def test_a_done_tracks_file_damaged_later_gives_a_picture_of_the_reason(
    admin_client, admin_user, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(
            admin_user, upload_of(make_audio_file(tmp_path, "wav", seconds=4.0))
        ).track
    assert processing.process_track(track.pk) == "done"
    Path(track.file.path).write_bytes(b"\x00garbage" * 100)
    response = admin_client.get(reverse("track-spectrogram", args=[track.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert Track.objects.get(pk=track.pk).status == Status.DONE


def test_a_tag_bomb_upload_is_analysed_without_its_tags(
    admin_client, tmp_path, django_capture_on_commit_callbacks
):
    mp3 = make_audio_file(tmp_path, "mp3", seconds=6.0)
    path = bombs.mp3_with_tag(mp3, bombs.many_frames_tag(100_000), tmp_path / "frames.mp3")
    status, body = post(admin_client, path, django_capture_on_commit_callbacks)
    assert status == 201, body  # answered: the check skips the 100,000 frames
    assert processing.process_track(body["id"]) == "done"
    track = Track.objects.get(pk=body["id"])
    assert track.genres_before == [] and track.title == ""
    assert any("The tags of frames.mp3 were not read" in w for w in track.warnings)
    assert "too many ID3 frames" in track.error  # its tags were not written either
    assert Path(track.file.path).read_bytes() == path.read_bytes()
