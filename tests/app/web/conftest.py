"""Fixtures of the web app's tests: users, uploads, analysed tracks.

The end-to-end tests of the web app use some of them too (tests/e2e/web/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from classifier.engine.analysis import Analysis
from classifier.engine.runner import analyse
from classifier.models import Track
from classifier.services import active_model, intake, processing
from tests.audiofiles import clip_excerpt, make_audio_file

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

    def make(
        fmt: str = "mp3", seconds: float = 3.0, seed: int = 0, name: str = "tone"
    ) -> SimpleUploadedFile:
        path = make_audio_file(audio_dir, fmt, seconds=seconds, name=f"{name}-{seed}", seed=seed)
        return SimpleUploadedFile(path.name, path.read_bytes())

    return make


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    """Excerpts are made once per test session."""
    return tmp_path_factory.mktemp("clips")


@pytest.fixture
def pending_track(user, make_upload, django_capture_on_commit_callbacks) -> Track:
    with django_capture_on_commit_callbacks(execute=False):
        return intake.accept_upload(user, make_upload()).track


@pytest.fixture(scope="session")
def classical_analysis(
    gtzan_dir: Path, clip_dir: Path, django_db_setup, django_db_blocker
) -> tuple[Path, Analysis]:
    """A classical excerpt and the real engine's analysis of it, made once per session with
    the configuration a worker would use."""
    path = clip_excerpt(gtzan_dir, clip_dir, "classical", 1)
    with django_db_blocker.unblock():  # the active model is looked up in the database
        # As the tests' workers run (tests/app/conftest.py): no novelty check.
        config = replace(active_model.engine_config(), novelty_path=None)
    return path, analyse(path, config, min_confidence=django_settings.GENREWEB_MIN_CONFIDENCE)


@pytest.fixture
def make_analysed_track(
    classical_analysis, django_capture_on_commit_callbacks
) -> Callable[[object], Track]:
    """`make(owner)`: the classical excerpt uploaded by `owner` and stored with the session's
    analysis as a worker stores it (claimed, verdict saved, genres written into the file)."""
    path, analysis = classical_analysis

    def make(owner) -> Track:
        with django_capture_on_commit_callbacks(execute=False):
            track = intake.accept_upload(
                owner, SimpleUploadedFile(path.name, path.read_bytes())
            ).track
        token = processing.claim_track(track.pk)
        assert token is not None and processing.store_analysis(track, token, analysis)
        track.refresh_from_db()
        return track

    return make


@pytest.fixture
def analysed_track(user, make_analysed_track) -> Track:
    """A classical clip, uploaded and analysed (no broker, no engine run of its own)."""
    return make_analysed_track(user)
