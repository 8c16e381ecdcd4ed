"""The web app's end-to-end fixtures: its users and media (tests/app/web/conftest.py), a
prefork worker, a browser page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.app.web import conftest as app
from tests.workers import Worker

# The web app tests' fixtures, here as there (media_root is autouse).
media_root = app.media_root
user = app.user
alice = app.alice
WAIT_SECONDS = 120


@pytest.fixture
def celery_worker(start_worker) -> Worker:
    """A prefork worker with one child process (which a test may kill mid-analysis)."""
    return start_worker("webtest", pool="prefork", GENREWEB_TORCH_THREADS="1")


@pytest.fixture
def page(chromium) -> Iterator[object]:
    context = chromium.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_SECONDS * 1000)
    yield context.new_page()
    context.close()
