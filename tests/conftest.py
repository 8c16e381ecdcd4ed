"""Fixtures shared by the whole suite."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared"))
GTZAN = SHARED / "data" / "gtzan_mini"
REFERENCE = SHARED / "reference" / "musicnn_msd"


def require_shared(path: Path) -> Path:
    """Return `path`, or skip (fail under CI=true) where ../shared is not beside the repo."""
    if path.exists():
        return path
    reason = f"{path} is absent: the shared training data is not beside this checkout"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " (CI=true: its absence is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def gtzan_dir() -> Path:
    return require_shared(GTZAN)


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return require_shared(REFERENCE)
