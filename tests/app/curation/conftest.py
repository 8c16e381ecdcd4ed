"""Fixtures of the curation tests: a small GTZAN subset, a baseline head, staff.

Every test writes media (samples, cached embeddings, heads) under one session folder in tmp,
so embeddings computed by one test are reused by the next (they are keyed by content hash,
exactly as in production) and nothing lands in the repository. The end-to-end curation tests
use them too (tests/e2e/curation/conftest.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from tests.conftest import MODEL_DIR

# 3 genres x 4 clips; clips 0-3 train/validate, 4-6 are left for the baseline head and tracks.
SUBSET_GENRES = ("blues", "classical", "metal")
SUBSET_CLIPS = range(4)
BASELINE_GENRES = ("blues", "classical")
BASELINE_CLIPS = (4, 5)


def gtzan_clip(gtzan: Path, genre: str, number: int) -> Path:
    return gtzan / genre / f"{genre}.{number:05d}.flac"


@pytest.fixture(scope="session")
def curation_root(tmp_path_factory) -> Path:
    """Media and the baseline head of the whole session live here."""
    return tmp_path_factory.mktemp("curation")


@pytest.fixture(autouse=True)
def _curation_settings(curation_root: Path) -> Iterator[Path]:
    # Per test, so the rest of the suite never sees these settings.
    with override_settings(
        MEDIA_ROOT=str(curation_root / "media"),
        GENREWEB_HEAD_PATH=str(curation_root / "baseline.safetensors"),
    ):
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
    # Named as the taxonomy names them (the bundled GTZAN head's "blues" would read the same).
    names = [genre.capitalize() for genre in BASELINE_GENRES]
    version = save_head(head, HeadInfo(genres=names, trained_on="test baseline"), path)
    return path, model_version(version)


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("curator", "curator@example.com", "pw-12345")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client
