"""Fixtures shared by the whole suite."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared"))
GTZAN = SHARED / "data" / "gtzan_mini"
REFERENCE = SHARED / "reference" / "musicnn_msd"


def _worker_redis_url() -> str:
    """The Redis database the real-worker tests use (and flush).

    The broker this process already talks to when that is Redis: a worker on another
    database would never see the tasks this process sends.
    """
    configured = os.environ.get("CELERY_BROKER_URL", "")
    default = configured if configured.startswith("redis") else "redis://127.0.0.1:6379/3"
    return os.environ.get("GENREWEB_TEST_REDIS_URL", default)


WORKER_REDIS_URL = _worker_redis_url()
# The converted musicnn weights, cached where the web app keeps them (converted once).
MODEL_DIR = Path(os.environ.get("GENREWEB_MODEL_DIR", REPO / "var" / "models"))


def require_shared(path: Path) -> Path:
    """Return `path`, or skip (fail under CI=true) where ../shared is not beside the repo."""
    if path.exists():
        return path
    unavailable(f"{path} is absent: the shared training data is not beside this checkout")


def unavailable(reason: str) -> None:
    """Skip a test whose data or service is missing; under CI=true its absence is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: its absence is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine_config():
    """The engine's configuration for engine tests: the bundled head, the shared weights cache."""
    from classifier.engine.runner import EngineConfig

    return EngineConfig(model_dir=MODEL_DIR)


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    return require_shared(GTZAN)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require_shared(REFERENCE)
