"""What every app test shares."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def novelty_check_off(settings):
    """Tones made in the test are rightly unlike music to the novelty check: off here, as for
    the workers (tests/conftest.py), except in the tests about it, which turn it on."""
    settings.GENREWEB_NOVELTY_CHECK = False


@pytest.fixture(autouse=True)
def fresh_genre_table():
    """Each test's database is rolled back without a signal: forget the genre table read."""
    from classifier.services.taxonomy import forget_curated

    forget_curated()
    yield
    forget_curated()


@pytest.fixture(autouse=True)
def own_library_index(settings, tmp_path_factory):
    """Each test's users' "songs like this" indexes in a folder of its own: a rolled-back
    database hands out the same ids again, which an index left by another test would mix up."""
    settings.RECOMMENDER_LIBRARY_INDEX_DIR = str(tmp_path_factory.mktemp("library-index"))
