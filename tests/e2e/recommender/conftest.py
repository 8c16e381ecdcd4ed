"""The recommender's end-to-end fixtures: its stand-ins and settings
(tests/app/recommender/conftest.py), and a worker started when the test asks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.app.recommender import conftest as app
from tests.workers import Worker

# The recommender app tests' fixtures, here as there.
spotify = app.spotify
media = app.media
catalog_settings = app.catalog_settings


@pytest.fixture
def catalog_worker(start_worker, catalog_settings, media) -> Callable[[], Worker]:
    """`catalog_worker()` starts a solo worker that samples from the media stand-in."""

    def start() -> Worker:
        return start_worker(
            "catalog",
            GENREWEB_TORCH_THREADS="1",
            RECOMMENDER_INDEX_DIR=str(catalog_settings.RECOMMENDER_INDEX_DIR),
            RECOMMENDER_SAMPLE_SEARCH=media.search_template,
            RECOMMENDER_RETRY_BACKOFF="0.5",
        )

    return start
