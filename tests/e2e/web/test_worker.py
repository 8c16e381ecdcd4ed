"""A real Celery worker (subprocess) on Redis and the test PostgreSQL database."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from classifier.engine.filetags import read_tags
from classifier.models import Status, Track
from tests.audiofiles import clip_excerpt
from tests.e2e.web.conftest import WAIT_SECONDS
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def upload(client: Client, path: Path) -> dict:
    response = client.post(
        reverse("upload"),
        {"file": SimpleUploadedFile(path.name, path.read_bytes())},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_upload_goes_through_the_worker_to_a_tagged_file(celery_worker, alice, gtzan_dir, tmp_path):
    clip = clip_excerpt(gtzan_dir, tmp_path / "clips", "metal", 2)
    created = upload(alice, clip)

    def finished() -> bool:
        return alice.get(created["status_url"]).json()["status"] in ("done", "failed")

    wait_for(finished, WAIT_SECONDS, "the worker to analyse the upload", celery_worker)
    track = Track.objects.get(pk=created["id"])
    assert track.status == Status.DONE, track.error
    assert track.task_id and track.attempts == 1
    assert track.primary_genre == "Metal" and len(track.embedding) == 200
    assert f"analyse_track[{track.task_id}] succeeded" in celery_worker.output()
    response = alice.get(reverse("track-download", args=[track.pk]))
    downloaded = tmp_path / "downloaded.flac"
    downloaded.write_bytes(b"".join(response.streaming_content))
    assert read_tags(downloaded).genres == ["Metal"] == track.genres_after


def test_a_track_whose_worker_dies_is_analysed_once_by_the_next(
    celery_worker, alice, gtzan_dir, tmp_path
):
    # A whole 30-second clip, so the analysis is still running when its process is killed.
    clip = clip_excerpt(gtzan_dir, tmp_path / "clips", "jazz", 1, seconds=30)
    created = upload(alice, clip)

    def processing() -> bool:
        return Track.objects.get(pk=created["id"]).status != Status.PENDING

    wait_for(processing, WAIT_SECONDS, "the worker to claim the track", celery_worker, every=0.02)
    assert Track.objects.get(pk=created["id"]).status == Status.PROCESSING, (
        "the analysis finished before the test could kill its worker"
    )
    [child] = celery_worker.children()
    os.kill(child, signal.SIGKILL)

    def finished() -> bool:
        return Track.objects.get(pk=created["id"]).status in (Status.DONE, Status.FAILED)

    wait_for(finished, WAIT_SECONDS, "the re-queued track to be analysed", celery_worker)
    track = Track.objects.get(pk=created["id"])
    assert track.status == Status.DONE, track.error
    assert track.attempts == 2  # the killed attempt, then the redelivered message
    assert "WorkerLostError" in celery_worker.output()
    assert read_tags(track.file.path).genres == track.genres_after
    assert track.genres_after[0] == "Jazz"  # then any other genre the track is given
