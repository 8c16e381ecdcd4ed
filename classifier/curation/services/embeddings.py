"""The CNN's per-chunk features of each sample, computed once and cached on disk.

A cache file is keyed by the sample's content hash, the CNN version and the feature name, so
a retrain reuses every unchanged sample and a new CNN never reads stale features.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
from django.core.files.storage import default_storage

from classifier.curation.models import Sample
from classifier.engine.files import atomic_write
from classifier.engine.runner import Engine
from classifier.engine.weights import model_version
from classifier.services.active_model import engine_config

CACHE_PREFIX = "curation/embeddings"
_lock = threading.Lock()


def cnn_version() -> str:
    return model_version(None)


def cache_path(content_hash: str, feature: str) -> Path:
    name = f"{CACHE_PREFIX}/{cnn_version()}/{feature}/{content_hash[:2]}/{content_hash}.npy"
    return Path(default_storage.path(name))


def cached_features(sample: Sample, feature: str) -> np.ndarray | None:
    path = cache_path(sample.content_hash, feature)
    if not path.exists():
        return None
    try:
        return np.load(path)
    except (OSError, ValueError):
        return None  # a damaged cache file is recomputed


def sample_features(sample: Sample, feature: str = "penultimate") -> np.ndarray:
    """(chunks, d) features of every chunk of the sample; raises the engine's AudioError."""
    features = cached_features(sample, feature)
    if features is None:
        outputs = _cnn().embed(sample.audio.path, full=True, feature=feature)
        features = outputs.features.astype(np.float32)
        _write(cache_path(sample.content_hash, feature), features)
    return features


def _write(path: Path, array: np.ndarray) -> None:
    # Two workers embedding the same sample never see half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode=0o644) as temp, temp.open("wb") as handle:
        np.save(handle, array)


@functools.cache
def _cnn_engine() -> Engine:
    return Engine.cnn_only(engine_config())


def _cnn():
    with _lock:
        return _cnn_engine()
