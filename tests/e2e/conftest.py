"""Fixtures of the end-to-end tests: the broker, real Celery workers, Chromium.

Each suite's conftest below asks `start_worker` for the worker it needs (its pool and the
environment its tasks read); every worker runs on the Redis of WORKER_REDIS_URL and the
test database, is stopped after the test, and its log is shown when the test fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import WORKER_REDIS_URL, unavailable
from tests.workers import (
    Worker,
    forget_broker_connections,
    launch,
    log_tail,
    stop,
    wait_for_sessions_to_close,
    wait_until_ready,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch):
    """This process sends its tasks to WORKER_REDIS_URL, flushed before and after the test;
    the Redis client of that database."""
    import redis
    from django.conf import settings

    from genreweb.celery import app

    client = redis.Redis.from_url(WORKER_REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis at {WORKER_REDIS_URL} cannot be reached: {exc}")
    # Celery reads CELERY_BROKER_URL from the environment before its settings.
    monkeypatch.setenv("CELERY_BROKER_URL", WORKER_REDIS_URL)
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        # The settings' transport options are another broker's (the filesystem's folders).
        monkeypatch.setattr(app.conf, "broker_transport_options", {})
    forget_broker_connections()
    yield client
    forget_broker_connections()
    client.flushdb()


@pytest.fixture
def start_worker(transactional_db, broker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `celery -A genreweb worker` when the test asks: `start_worker(name, pool="solo",
    **env)` returns it once it is ready. Every worker started is stopped after the test,
    and its database sessions waited out so pytest-django can drop the test database."""
    workers: list[Worker] = []

    def start(name: str, pool: str = "solo", **env: str) -> Worker:
        worker = launch(f"{name}-{len(workers)}", tmp_path, pool, env)
        workers.append(worker)
        wait_until_ready(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            stop(worker.process)
            print(log_tail(worker))  # shown by pytest when the test failed
        wait_for_sessions_to_close(workers)


@pytest.fixture
def chromium(monkeypatch: pytest.MonkeyPatch):
    """Debian's chromium, headless, through Playwright (no downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here are
    # still synchronous, which Django allows only with this set.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            # The ORM's connections opened while Playwright's loop ran belong to that
            # context; closed here, or the test database could not be dropped.
            connections.close_all()
            browser.close()


@pytest.fixture(autouse=True)
def novelty_check_off(settings):
    """As in the app tests (tests/app/conftest.py): the app run in process checks no novelty,
    like the workers these tests start (tests/conftest.py sets their environment)."""
    settings.GENREWEB_NOVELTY_CHECK = False


@pytest.fixture(autouse=True)
def fresh_genre_table():
    """A flushed database sends no signal: forget the genre table read (tests/app/conftest.py)."""
    from classifier.services.taxonomy import forget_curated

    forget_curated()
    yield
    forget_curated()
