"""Load the pretrained musicnn MSD model: convert the wheel's checkpoint once, then use a cache.

The musicnn==0.1.0 wheel ships the TensorFlow checkpoint; its files are pinned by sha256 in
the registry and converted by our own reader (no TensorFlow). The converted weights are
cached as safetensors, and later loads read only that cache.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from classifier.engine import registry
from classifier.engine.checkpoint import DATA_FILE, read_checkpoint
from classifier.engine.errors import ModelError
from classifier.engine.files import atomic_write, sha256_of
from classifier.engine.musicnn import MusiCNN, Weights, parameter_shapes, state_dict_from_tf

CACHE_FILE = "musicnn_msd.safetensors"
# Names the converted weights in verdicts: the pinned checkpoint's content decides it.
MUSICNN_VERSION = "musicnn-msd-" + registry.MUSICNN_SHA256[DATA_FILE][:8]


def model_version(head_version: str | None) -> str:
    """The one model version string: the CNN's version, then the head's (none: the CNN alone)."""
    return MUSICNN_VERSION if head_version is None else f"{MUSICNN_VERSION}+head-{head_version}"


def verify_checkpoint(folder: Path) -> None:
    """Refuse checkpoint files whose sha256 differs from the pinned one."""
    for suffix, expected in registry.MUSICNN_SHA256.items():
        path = folder / suffix
        if not path.is_file():
            raise ModelError(
                f"the musicnn checkpoint file {path} is missing: reinstall with "
                f"`pip install --no-deps --force-reinstall {registry.MUSICNN_WHEEL}`"
            )
        actual = sha256_of(path)
        if actual != expected:
            raise ModelError(
                f"the musicnn checkpoint file {path} is not the pinned one: "
                f"sha256 {actual}, expected {expected}"
            )


def convert_checkpoint(folder: Path) -> Weights:
    """The verified checkpoint in `folder` as the model's weights."""
    verify_checkpoint(folder)
    return state_dict_from_tf(read_checkpoint(folder))


def _write_cache(weights: Weights, path: Path) -> None:
    # A crash or a concurrent load never sees a half-written cache.
    with atomic_write(path, mode=0o644) as temp:
        save_file(weights, str(temp), metadata={"model": MUSICNN_VERSION})


def _read_cache(path: Path) -> Weights | None:
    """The cached weights, or None where the cache was written for another version.

    Caches written by the former torch port also hold batch norm's num_batches_tracked
    counters, which inference has no use for: only the model's parameters are read.
    """
    try:
        with safe_open(path, framework="numpy") as cache:
            if (cache.metadata() or {}).get("model") != MUSICNN_VERSION:
                return None
            names = set(cache.keys()) & set(parameter_shapes())
            return {name: cache.get_tensor(name) for name in sorted(names)}
    except (SafetensorError, OSError) as exc:
        raise ModelError(
            f"the cached musicnn weights {path} are damaged ({exc}): "
            "delete the file and they will be converted again"
        ) from exc


def load_musicnn(cache_dir: Path | None = None, checkpoint: Path | None = None) -> MusiCNN:
    """The pretrained musicnn MSD model.

    The first call converts the wheel's checkpoint (or the checkpoint folder given) and
    caches it as `<cache_dir>/musicnn_msd.safetensors` (by default in the user's cache
    folder); later calls read only that file.
    """
    folder = Path(cache_dir) if cache_dir is not None else registry.default_model_dir()
    path = folder / CACHE_FILE
    weights = _read_cache(path) if path.is_file() else None
    if weights is None:
        source = checkpoint if checkpoint is not None else registry.checkpoint_dir()
        weights = convert_checkpoint(source)
        folder.mkdir(parents=True, exist_ok=True)
        _write_cache(weights, path)
    return MusiCNN(weights)
