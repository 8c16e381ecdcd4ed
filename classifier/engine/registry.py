"""The one model registry: where weights live and which versions the engine uses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from classifier.engine.errors import ModelError

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
# The wheel's MagnaTagATune model (same architecture, 50 MTT tags): not used by the engine,
# measured as a second view by bench/second_view.py (the model card's "Second view").
MTT_CHECKPOINT_DIR = "MTT_musicnn"
MTT_SHA256 = {
    ".index": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
    ".data-00000-of-00001": "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
}


def checkpoint_dir() -> Path:
    """The wheel's MSD_musicnn folder, found without importing musicnn (it imports TF)."""
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


# The multi-genre head of the broad taxonomy (train-default's output): the default.
MULTIGENRE_HEAD = BUNDLED_DIR / "multigenre" / "genre_head.safetensors"
DEFAULT_HEAD = MULTIGENRE_HEAD
# The first head, GTZAN's ten genres from 70 clips: kept for comparisons and older installs
# (GENREWEB_HEAD_PATH selects it).
GTZAN_HEAD = BUNDLED_DIR / "genre_head.safetensors"
# How far from the training music a track may sound before its verdict is uncertain
# (novelty.py); it belongs to the CNN, so every head shares it.
NOVELTY_MODEL = BUNDLED_DIR / "novelty.safetensors"


def default_model_dir() -> Path:
    """Where converted weights are cached when the caller names no folder: the user's cache."""
    return Path.home() / ".cache" / "genreweb" / "models"
