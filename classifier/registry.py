"""The one model registry: where weights live and which versions the engine uses."""
from __future__ import annotations

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
