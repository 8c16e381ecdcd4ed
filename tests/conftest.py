"""What the whole suite shares: where the data is, skipping for missing data, the markers.

The tests are laid out by layer, and each folder gives its tests a marker:

- `tests/engine/` (`engine`): the genre engine alone, with no database and no Django at all;
- `tests/app/` (`app`): the web app, curation and the recommender on a test database, with
  no real worker, no browser and no subprocess;
- `tests/e2e/` (`e2e`): real Celery workers, Chromium, and the app's commands run as processes.

`shared`, `worker` and `browser` follow from the fixtures a test uses (`gtzan_dir` or
`reference_dir`; `start_worker`; `chromium`), so no test has to remember them. This module
imports nothing of Django: the engine's tests run without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
SHARED = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared"))
GTZAN = SHARED / "data" / "gtzan_mini"
REFERENCE = SHARED / "reference" / "musicnn_msd"

LAYERS = ("engine", "app", "e2e")
# A test that uses one of these fixtures (directly or through another) reads ../shared.
SHARED_FIXTURES = {"gtzan_dir", "reference_dir"}
WORKER_FIXTURE = "start_worker"  # tests/e2e/conftest.py
BROWSER_FIXTURE = "chromium"  # tests/e2e/conftest.py
# pytest-django's own fixtures that every test has, whether or not it uses Django.
DJANGO_INFRASTRUCTURE = {"django_test_environment", "django_db_blocker"}


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
# Most tests analyse tones made in the test, which the novelty check rightly calls unlike
# music (so uncertain, nothing written); it is off for the tests, their workers and the app
# they start, except where it is the subject (tests/engine/test_novelty.py and
# tests/app/web/test_non_music.py turn it on). The product's default is on.
os.environ.setdefault("GENREWEB_NOVELTY_CHECK", "false")


def require_shared(path: Path) -> Path:
    """Return `path`, or skip (fail under CI=true) where ../shared is not beside the repo."""
    if path.exists():
        return path
    unavailable(f"{path} is absent: the shared training data is not beside this checkout")
    raise AssertionError("unreachable: unavailable() skips or fails")


def unavailable(reason: str) -> None:
    """Skip a test whose data or service is missing; under CI=true its absence is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: its absence is a failure)")
    pytest.skip(reason)


# ---------------------------------------------------------------- markers


def layer_of(item: pytest.Item) -> str | None:
    """The layer folder a test lives in (engine, app or e2e)."""
    try:
        folder = Path(item.path).relative_to(TESTS).parts[0]
    except ValueError:
        return None
    return folder if folder in LAYERS else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_sqlite: bool | None = None
    for item in items:
        layer = layer_of(item)
        if layer is not None:
            item.add_marker(layer)
        used = set(getattr(item, "fixturenames", ()))
        if used & SHARED_FIXTURES:
            item.add_marker("shared")
        if WORKER_FIXTURE in used:
            item.add_marker("worker")
            item.add_marker("postgres")  # a worker process shares the test database
        if BROWSER_FIXTURE in used:
            item.add_marker("browser")
        if layer == "engine":
            _refuse_django(item)
        postgres = item.get_closest_marker("postgres")
        if postgres is not None:
            if on_sqlite is None:
                on_sqlite = _database_is_sqlite()
            if on_sqlite:
                reason = postgres.kwargs.get("reason") or (
                    "a worker process shares the test database only on PostgreSQL"
                )
                item.add_marker(
                    pytest.mark.skip(reason=f"PostgreSQL only ({reason}); CI runs it on PostgreSQL")
                )


def _refuse_django(item: pytest.Item) -> None:
    """An engine test must not touch Django: no database, no settings, no client."""
    info = getattr(item, "_fixtureinfo", None)
    django = sorted(
        name
        for name, defs in (info.name2fixturedefs.items() if info else ())
        if not name.startswith("_")
        and name not in DJANGO_INFRASTRUCTURE
        and any(d.func.__module__.startswith("pytest_django") for d in defs)
    )
    if django or item.get_closest_marker("django_db"):
        raise pytest.UsageError(
            f"{item.nodeid} is an engine test but uses Django ({', '.join(django) or 'django_db'})"
            ": the engine's tests run without Django; move it to tests/app/"
        )


def _database_is_sqlite() -> bool:
    from django.db import connection  # only app and e2e tests carry the postgres marker

    return connection.vendor == "sqlite"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def engine_config():
    """The engine's configuration for engine tests: the bundled head, the shared weights cache,
    no novelty check (see NOVELTY_CHECK below)."""
    from classifier.engine.runner import EngineConfig

    return EngineConfig(model_dir=MODEL_DIR, novelty_path=None)


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    return require_shared(GTZAN)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require_shared(REFERENCE)
