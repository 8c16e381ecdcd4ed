"""The curation end-to-end fixtures: its subset, baseline head and staff
(tests/app/curation/conftest.py), a worker on the baseline head, a browser page."""

from __future__ import annotations

import pytest

from tests.app.curation import conftest as app
from tests.workers import Worker

# The curation app tests' fixtures, here as there (the settings one is autouse).
_curation_settings = app._curation_settings
curation_root = app.curation_root
gtzan_subset = app.gtzan_subset
baseline_head = app.baseline_head
staff = app.staff
staff_client = app.staff_client


@pytest.fixture
def celery_worker(start_worker, baseline_head) -> Worker:
    """A solo worker whose head is the baseline, set by GENREWEB_HEAD_PATH as an operator would."""
    return start_worker("curation", GENREWEB_HEAD_PATH=str(baseline_head[0]))


@pytest.fixture
def page(chromium):
    page = chromium.new_page()
    page.set_default_timeout(30_000)
    return page
