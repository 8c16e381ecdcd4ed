"""Fixtures of the web app's tests: users, uploads, analysed tracks, a real Celery worker."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from classifier.models import Track
from classifier.services import intake, processing
from tests.audiofiles import make_audio_file, write_audio
from tests.conftest import WORKER_REDIS_URL
from tests.workers import stop, wait_for_sessions_to_close

REPO = Path(__file__).resolve().parents[2]
# The worker tests' broker: their own Redis database, flushed before each worker starts.
TEST_REDIS_URL = WORKER_REDIS_URL
WAIT_SECONDS = 120
PASSWORD = "a-long-test-password-9"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    """Uploads of each test go to its own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password=PASSWORD)


@pytest.fixture
def alice(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def mallory(other_user) -> Client:
    client = Client()
    client.force_login(other_user)
    return client


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "audio"
    folder.mkdir()
    return folder


@pytest.fixture
def make_upload(audio_dir: Path) -> Callable[..., SimpleUploadedFile]:
    """An uploaded file of real audio (a few seconds), like the browser would send."""
    def make(fmt: str = "mp3", seconds: float = 3.0, seed: int = 0,
             name: str = "tone") -> SimpleUploadedFile:
        path = make_audio_file(audio_dir, fmt, seconds=seconds, name=f"{name}-{seed}",
                               seed=seed)
        return SimpleUploadedFile(path.name, path.read_bytes())
    return make


CLIP_SECONDS = 9.0  # three 3-second chunks: real music, analysed in about a second


def clip_excerpt(gtzan_dir: Path, folder: Path, genre: str, number: int,
                 seconds: float = CLIP_SECONDS) -> Path:
    """The first seconds of a GTZAN clip as FLAC in `folder` (../shared stays read-only)."""
    source = gtzan_dir / genre / f"{genre}.{number:05d}.flac"
    target = folder / source.name
    if not target.exists():
        samples, rate = _read_start(source, seconds)
        folder.mkdir(parents=True, exist_ok=True)
        write_audio(target, samples, rate, "flac")
    return target


def _read_start(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The first `seconds` of `path` as mono float32, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate, wanted, blocks = stream.rate, int(seconds * stream.rate), []
        for frame in container.decode(stream):
            data = frame.to_ndarray().astype(np.float32)
            if frame.format.name.startswith("s16"):  # GTZAN: 16-bit integers
                data /= 32768.0
            channels = len(frame.layout.channels)
            mono = data.mean(0) if frame.format.is_planar else data.reshape(-1, channels).mean(1)
            blocks.append(mono)
            if sum(map(len, blocks)) >= wanted:
                break
    return np.concatenate(blocks)[:wanted], rate


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """Excerpts are made once per test session."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture
def clip_upload(gtzan_dir: Path, clip_dir: Path) -> Callable[[str, int], SimpleUploadedFile]:
    """An excerpt of a real GTZAN clip as an upload."""
    def make(genre: str = "classical", number: int = 1) -> SimpleUploadedFile:
        path = clip_excerpt(gtzan_dir, clip_dir, genre, number)
        return SimpleUploadedFile(path.name, path.read_bytes())
    return make


@pytest.fixture
def pending_track(user, make_upload, django_capture_on_commit_callbacks) -> Track:
    with django_capture_on_commit_callbacks(execute=False):
        return intake.accept_upload(user, make_upload()).track


@pytest.fixture
def analysed_track(user, clip_upload, django_capture_on_commit_callbacks) -> Track:
    """A classical clip, uploaded and analysed by the real engine (no broker)."""
    with django_capture_on_commit_callbacks(execute=False):
        track = intake.accept_upload(user, clip_upload("classical", 1)).track
    assert processing.process_track(track.pk) == "done", Track.objects.get(pk=track.pk).error
    track.refresh_from_db()
    return track


# ---------------------------------------------------------------- a real Celery worker


def database_url() -> str:
    """The URL of the database these tests run on (pytest-django's test database)."""
    s = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.fail("the worker tests need PostgreSQL: set DATABASE_URL=postgres://... "
                    "(make test does)")
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


class Worker:
    def __init__(self, process: subprocess.Popen, log: Path) -> None:
        self.process = process
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[int]:
        """The pool's child processes (prefork), from /proc."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []


def _forget_broker_connections() -> None:
    """Drop the Celery app's pooled producers, so the next send uses the current URL."""
    from genreweb.celery import app

    app._after_fork()  # resets the pools, as after a fork


@pytest.fixture
def celery_worker(transactional_db, settings, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """`celery -A genreweb worker` in a subprocess, on Redis db 3 and the test database."""
    import redis

    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    # Celery reads CELERY_BROKER_URL from the environment first: this process sends there.
    monkeypatch.setenv("CELERY_BROKER_URL", TEST_REDIS_URL)
    _forget_broker_connections()
    log = tmp_path / "worker.log"
    env = {**os.environ, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": TEST_REDIS_URL,
           "MEDIA_ROOT": str(settings.MEDIA_ROOT), "GENREWEB_MODEL_DIR":
           str(settings.GENREWEB_MODEL_DIR), "GENREWEB_DATA_DIR": str(tmp_path / "data"),
           "DJANGO_SETTINGS_MODULE": "genreweb.settings", "GENREWEB_TORCH_THREADS": "1"}
    command = [sys.executable, "-m", "celery", "-A", "genreweb", "worker", "--pool", "prefork",
               "--concurrency", "1", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "--loglevel", "INFO",
               "--hostname", f"webtest-{uuid.uuid4().hex[:8]}@%h"]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT)
    worker = Worker(process, log)
    try:
        wait_for(lambda: "ready." in worker.output() or process.poll() is not None,
                 "the Celery worker to start", worker)
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited at start:\n{worker.output()}")
        yield worker
    finally:
        stop(process)
        _forget_broker_connections()
        wait_for_sessions_to_close()


def wait_for(condition: Callable[[], bool], what: str, worker: Worker | None = None,
             seconds: float = WAIT_SECONDS, interval: float = 0.2) -> None:
    """Wait until `condition()` holds, failing with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    detail = f"\n--- worker log ---\n{worker.output()[-4000:]}" if worker else ""
    pytest.fail(f"gave up after {seconds:.0f} s waiting for {what}{detail}")
