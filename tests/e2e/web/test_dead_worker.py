"""A real Celery worker dies whole mid-analysis (its main process and its pool child at once,
as when its host or container is lost): its message stays unacknowledged in Redis for the
visibility timeout, so only the heartbeat tells the next worker's sweep that the claim is
dead. The track must be queued again within two heartbeat timeouts, not 36 minutes.

(A pool child killed alone is handed back by its main process at once; tests/web/test_worker.py
covers that.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.models import Status, Track
from tests.audiofiles import clip_excerpt
from tests.conftest import REPO
from tests.workers import Worker, stop, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

# The web tests' fixtures (these tests keep no conftest of their own).

HEARTBEAT_TIMEOUT = 10  # seconds; a beat every 3.3 s
SWEEP_EVERY = 1


@pytest.fixture
def fast_heartbeats(monkeypatch: pytest.MonkeyPatch, settings) -> None:
    """Workers started after this (the celery_worker fixture, when named after it) beat
    and sweep on a test's time scale."""
    monkeypatch.setenv("GENREWEB_HEARTBEAT_TIMEOUT", str(HEARTBEAT_TIMEOUT))
    monkeypatch.setenv("GENREWEB_SWEEP_EVERY", str(SWEEP_EVERY))
    settings.GENREWEB_HEARTBEAT_TIMEOUT = HEARTBEAT_TIMEOUT


def like(worker: Worker, log: Path, *extra: str) -> Callable[[], Worker]:
    """How to start another worker as `worker` was (its command line and environment, read
    from /proc while it lives), under its own name and with `extra` options."""
    pid = worker.process.pid
    command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    environ = dict(
        item.split(b"=", 1)
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if b"=" in item
    )
    at = command.index(b"--hostname")
    command[at + 1] = f"next-{uuid.uuid4().hex[:8]}@%h".encode()
    command += [arg.encode() for arg in extra]

    def start() -> Worker:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=REPO, env=environ, stdout=sink, stderr=subprocess.STDOUT
            )
        return Worker(process, log, worker.session_name)

    return start


def test_a_track_whose_worker_died_is_queued_again_within_two_heartbeat_timeouts(
    fast_heartbeats, celery_worker, alice, gtzan_dir, tmp_path
):
    clip = clip_excerpt(gtzan_dir, tmp_path / "clips", "jazz", 1, seconds=30)
    response = alice.post(
        reverse("upload"),
        {"file": SimpleUploadedFile(clip.name, clip.read_bytes())},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    pk = response.json()["id"]

    def track() -> Track:
        return Track.objects.get(pk=pk)

    wait_for(
        lambda: track().status != Status.PENDING,
        240,
        "the worker to claim the track",
        celery_worker,
        every=0.02,
    )
    [child] = celery_worker.children()
    main = celery_worker.process.pid
    first = track()
    assert first.status == Status.PROCESSING, "the analysis finished before the kill"
    start_next = like(
        celery_worker,
        tmp_path / "next-worker.log",
        "--beat",
        "--schedule",
        str(tmp_path / "beat-schedule"),
    )
    next_worker = None
    try:
        # Stopped first, so that its main process cannot hand the message back when the
        # child dies: the whole worker goes at once.
        for pid in (main, child):
            os.kill(pid, signal.SIGSTOP)
        for pid in (child, main):
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        next_worker = start_next()
        celery_worker.process.wait(30)

        def requeued() -> bool:
            now = track()
            return now.status != Status.PROCESSING or now.task_id != first.task_id

        wait_for(
            requeued,
            6 * HEARTBEAT_TIMEOUT,
            "the sweep to queue the track again",
            next_worker,
            every=0.1,
        )
        requeued_after = time.monotonic() - killed_at
        wait_for(
            lambda: track().status in (Status.DONE, Status.FAILED),
            240,
            "the next worker to analyse the track",
            next_worker,
        )
        ready = "ready." in next_worker.output()
        print(
            f"\nworker killed -> track queued again: {requeued_after:.1f} s "
            f"(heartbeat timeout {HEARTBEAT_TIMEOUT} s, sweep every {SWEEP_EVERY} s)"
        )
        assert requeued_after <= 2 * HEARTBEAT_TIMEOUT, requeued_after
        done = track()
        assert done.status == Status.DONE, done.error
        assert done.attempts == 2 and done.task_id != first.task_id and ready
        assert "queued 1 stale tracks again" in next_worker.output()
    finally:
        if next_worker is not None:
            stop(next_worker.process)
