"""The CNN's outputs for training clips, computed once and kept on disk.

Training the default head compares feature sets and calibrations over hundreds of clips;
the CNN is the slow part, so each clip's four outputs (every chunk's taggram, penultimate,
max_pool and mean_pool) are cached as one .npz per clip, keyed by the clip's path, size and
modification time and by the CNN's version. The cache lives outside the repository.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifier.engine.runner import Engine
from classifier.engine.weights import MUSICNN_VERSION

PARTS = ("taggram", "penultimate", "max_pool", "mean_pool")
WIDTHS = {"taggram": 50, "penultimate": 200, "max_pool": 753, "mean_pool": 753}
ALL_PARTS = "+".join(PARTS)


def default_cache_dir() -> Path:
    """GENREWEB_FEATURE_CACHE, else a folder in the system's temporary directory."""
    configured = os.environ.get("GENREWEB_FEATURE_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "genreweb-features"


@dataclass(frozen=True)
class ClipOutputs:
    """One clip's CNN outputs, a row per 3-second chunk."""

    taggram: np.ndarray  # (k, 50)
    penultimate: np.ndarray  # (k, 200)
    max_pool: np.ndarray  # (k, 753)
    mean_pool: np.ndarray  # (k, 753)

    def part(self, name: str) -> np.ndarray:
        array: np.ndarray = getattr(self, name)
        return array


def cached_path(cache_dir: Path, path: Path, model: str = MUSICNN_VERSION) -> Path:
    """Where `model`'s outputs for the clip at `path` (as it is now) are cached."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{int(stat.st_mtime)}|{model}"
    return cache_dir / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.npz"


def read_cached(cached: Path) -> ClipOutputs | None:
    """The outputs cached at `cached`; None where there are none yet."""
    if not cached.is_file():
        return None
    with np.load(cached) as stored:
        return ClipOutputs(*(stored[name] for name in PARTS))


def write_cached(outputs: ClipOutputs, cached: Path) -> None:
    """Cache `outputs` at `cached`; a concurrent reader never sees half a file."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    temp = cached.with_suffix(".tmp.npz")
    np.savez(
        temp,
        taggram=outputs.taggram,
        penultimate=outputs.penultimate,
        max_pool=outputs.max_pool,
        mean_pool=outputs.mean_pool,
    )
    temp.replace(cached)


def clip_outputs(engine: Engine, path: Path, cache_dir: Path) -> ClipOutputs:
    """The clip's outputs from the cache, computed (every chunk) and cached when absent."""
    cached = cached_path(cache_dir, path)
    found = read_cached(cached)
    if found is not None:
        return found
    features = engine.embed(path, full=True, feature=ALL_PARTS).features
    columns = np.split(features, np.cumsum([WIDTHS[p] for p in PARTS])[:-1], axis=1)
    outputs = ClipOutputs(*(c.astype(np.float32) for c in columns))
    write_cached(outputs, cached)
    return outputs


def all_outputs(
    engine: Engine,
    paths: list[Path],
    cache_dir: Path,
    on_clip: Callable[[int, int, Path, Exception | None], object] | None = None,
) -> dict[Path, ClipOutputs]:
    """Every clip's outputs; a clip that fails is reported through on_clip and left out."""
    result: dict[Path, ClipOutputs] = {}
    for n, path in enumerate(paths, 1):
        error: Exception | None = None
        try:
            result[path] = clip_outputs(engine, path, cache_dir)
        except Exception as exc:  # one clip's failure must not end a long run
            error = exc
        if on_clip:
            on_clip(n, len(paths), path, error)
    return result
