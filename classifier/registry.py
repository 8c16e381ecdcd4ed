"""The one model registry: where weights live and which versions the engine uses."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Small artefacts committed with the code: the default genre head and its model card.
BUNDLED_DIR = PACKAGE_DIR / "bundled"

# The musicnn MSD checkpoint inside the musicnn==0.1.0 wheel, pinned by content.
MUSICNN_WHEEL = "musicnn==0.1.0"
MUSICNN_CHECKPOINT_DIR = "MSD_musicnn"
MUSICNN_SHA256 = {
    ".index": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
    ".data-00000-of-00001": "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
}


def checkpoint_dir() -> Path:
    """The wheel's MSD_musicnn folder, found without importing musicnn (it imports TF)."""
    from classifier.errors import ModelError

    spec = importlib.util.find_spec("musicnn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        folder = Path(location) / MUSICNN_CHECKPOINT_DIR
        if folder.is_dir():
            return folder
    raise ModelError(
        f"the pretrained musicnn weights are not installed: run "
        f"`pip install --no-deps {MUSICNN_WHEEL}` (only its weight files are used)"
    )


def model_dir() -> Path:
    """Where converted weights and trained heads are cached.

    The Django setting wins where settings are configured; plain-Python use of the
    engine falls back to GENREWEB_MODEL_DIR, then to the user's cache folder.
    """
    from django.conf import settings

    if settings.configured and getattr(settings, "GENREWEB_MODEL_DIR", None):
        path = Path(settings.GENREWEB_MODEL_DIR)
    elif os.environ.get("GENREWEB_MODEL_DIR"):
        path = Path(os.environ["GENREWEB_MODEL_DIR"])
    else:
        path = Path.home() / ".cache" / "genreweb" / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


DEFAULT_HEAD = BUNDLED_DIR / "genre_head.safetensors"


def default_head_path() -> Path:
    """The head the engine uses unless told otherwise.

    The version staff promoted in the admin wins; then GENREWEB_HEAD_PATH; then the bundled head.
    """
    from django.conf import settings

    active = _promoted_head()
    if active is not None:
        return active

    configured = getattr(settings, "GENREWEB_HEAD_PATH", None) if settings.configured else None
    return Path(configured or os.environ.get("GENREWEB_HEAD_PATH") or DEFAULT_HEAD)


def _promoted_head() -> Path | None:
    """The head file of the promoted model version, where the curation app is running."""
    from django.apps import apps

    if not apps.ready or not apps.is_installed("classifier.curation"):
        return None
    from django.db import DatabaseError

    from classifier.curation.active import active_head_path

    try:
        return active_head_path()
    except DatabaseError:
        # A database not migrated yet (a first `classify` run) has no promoted head.
        return None
