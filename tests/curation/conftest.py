"""Fixtures of the curation tests: a small GTZAN subset, a baseline head, a real Celery worker.

Every test writes media (samples, cached embeddings, heads) under one session folder in tmp,
so embeddings computed by one test are reused by the next (they are keyed by content hash,
exactly as in production) and nothing lands in the repository.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from tests.conftest import MODEL_DIR, WORKER_REDIS_URL, unavailable
from tests.workers import stop

REPO = Path(__file__).resolve().parents[2]
# 3 genres x 4 clips; clips 0-3 train/validate, 4-6 are left for the baseline head and tracks.
SUBSET_GENRES = ("blues", "classical", "metal")
SUBSET_CLIPS = range(4)
BASELINE_GENRES = ("blues", "classical")
BASELINE_CLIPS = (4, 5)
REDIS_URL = WORKER_REDIS_URL
WORKER_START_LIMIT = 180  # seconds for a cold worker to load Django, torch and the CNN


def gtzan_clip(gtzan: Path, genre: str, number: int) -> Path:
    return gtzan / genre / f"{genre}.{number:05d}.flac"


@pytest.fixture(scope="session")
def curation_root(tmp_path_factory) -> Path:
    """Media and the baseline head of the whole session live here."""
    return tmp_path_factory.mktemp("curation")


@pytest.fixture(autouse=True)
def _curation_settings(curation_root: Path) -> Iterator[Path]:
    # Per test, so the rest of the suite never sees these settings.
    with override_settings(MEDIA_ROOT=str(curation_root / "media"),
                           GENREWEB_HEAD_PATH=str(curation_root / "baseline.safetensors")):
        yield curation_root / "media"


@pytest.fixture(scope="session")
def gtzan_subset(gtzan_dir: Path, tmp_path_factory) -> Path:
    """A labelled folder of 3 genres x 4 GTZAN clips, copied to tmp."""
    root = tmp_path_factory.mktemp("gtzan_subset")
    for genre in SUBSET_GENRES:
        (root / genre).mkdir()
        for n in SUBSET_CLIPS:
            shutil.copy(gtzan_clip(gtzan_dir, genre, n), root / genre)
    return root


@pytest.fixture(scope="session")
def baseline_head(curation_root: Path, gtzan_dir: Path) -> tuple[Path, str]:
    """The "active" head before any promotion: blues vs classical, from clips the runs never see.

    Returns (path, model string). Settings point GENREWEB_HEAD_PATH at it, as an operator would.
    """
    from classifier.engine.head import HeadInfo, TrainConfig, save_head
    from classifier.engine.runner import Engine, EngineConfig
    from classifier.engine.training import fit
    from classifier.engine.weights import model_version

    engine = Engine.cnn_only(EngineConfig(model_dir=MODEL_DIR))
    features, labels = [], []
    for label, genre in enumerate(BASELINE_GENRES):
        for n in BASELINE_CLIPS:
            features.append(engine.embed(gtzan_clip(gtzan_dir, genre, n)).features)
            labels.append(label)
    head = fit(features, labels, len(BASELINE_GENRES), TrainConfig(epochs=100))
    path = curation_root / "baseline.safetensors"
    version = save_head(head, HeadInfo(genres=list(BASELINE_GENRES), trained_on="test baseline"),
                        path)
    return path, model_version(version)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("curator", "curator@example.com", "pw-12345")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


# ---- a real Celery worker on Redis db 7

@contextlib.contextmanager
def celery_broker(url: str) -> Iterator[None]:
    """Point this process's Celery app at `url` (settings were read before the tests began)."""
    from genreweb.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.broker_url, app.conf.broker_transport_options = url, {}
    _drop_pools(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _drop_pools(app)


def _drop_pools(app) -> None:
    # Celery keeps its broker connections in pools made on first use and registered by
    # kombu per URL: all are closed and forgotten, so the next message opens fresh ones.
    from kombu import pools

    pools.reset()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def celery_worker(transactional_db, curation_root: Path, baseline_head, tmp_path
                  ) -> Iterator[subprocess.Popen]:
    """`celery -A genreweb worker` in a subprocess, on the test database and Redis db 7."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "postgresql":
        unavailable("a worker process shares the test database only on PostgreSQL: "
                     "set DATABASE_URL=postgres://...")
    try:
        flush_redis(REDIS_URL)
    except Exception as exc:  # noqa: BLE001 - whatever redis-py raises, the reason is shown
        unavailable(f"Redis at {REDIS_URL} cannot be reached: {exc}")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "genreweb.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                        f"{db['PORT'] or 5432}/{db['NAME']}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "GENREWEB_HEAD_PATH": str(baseline_head[0]),
        "GENREWEB_DATA_DIR": str(tmp_path / "worker-data"),
        "GENREWEB_MODEL_DIR": str(settings.GENREWEB_MODEL_DIR),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "genreweb", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--without-mingle", "--without-gossip", "--without-heartbeat",
         "--hostname", f"curation-{uuid.uuid4().hex[:8]}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(process, log_path)
        with celery_broker(REDIS_URL):
            yield process
    finally:
        stop(process)
        log.close()
        flush_redis(REDIS_URL)
        print(log_path.read_text()[-4000:])  # shown by pytest when the test failed


def _wait_until_ready(process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + WORKER_START_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited:\n{log_path.read_text()[-3000:]}")
        if " ready." in log_path.read_text():
            return
        time.sleep(0.5)
    pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")


def wait_for(predicate, limit: float = 300, every: float = 0.5, what: str = "it"):
    """Poll until predicate() is truthy (a wait, not a timing assertion); its value."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"gave up waiting for {what} after {limit:.0f} s")
