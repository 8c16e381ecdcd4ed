"""The genre head: a small classifier on the CNN's per-chunk features.

The head is trained on chunks (every chunk inherits its track's label) and judged on
tracks (the mean of its chunks' probabilities), the same way the verdict is made.

This module is the head's inference, in numpy: what a classify run or a worker needs, with no
torch to import. Training (headnet.py) is torch's, and reads its probabilities from here.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from classifier.engine.errors import ModelError
from classifier.engine.files import atomic_write
from classifier.engine.numeric import sigmoid, softmax

# A head's tensors by name, as its file stores them: "mean", "std", "net.1.weight", ... and,
# multi-label, "scale", "bias", "parent". The names are the torch module's (headnet.py).
HeadState = dict[str, np.ndarray]
_LINEAR = re.compile(r"net\.(\d+)\.weight")


@dataclass
class HeadInfo:
    """What a head file says about itself (stored as safetensors metadata)."""

    genres: list[str]
    feature: str = "penultimate"
    hidden: int = 0
    trained_on: str = ""
    # How each genre is spelled in a file's tags (the taxonomy the head was trained with).
    tag_spelling: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    # "softmax": one genre per track (the GTZAN heads); "sigmoid": several genres per track,
    # each its own calibrated probability, a style never below its parent.
    activation: str = "softmax"
    # Each style's parent genre (top-level genres are absent), from the taxonomy.
    parents: dict[str, str] = field(default_factory=dict)
    taxonomy: str = ""  # the taxonomy version the genres come from ("": none)


class HasState(Protocol):
    """A head whose tensors can be saved: this module's GenreHead, headnet's TrainableHead."""

    def state_arrays(self) -> HeadState: ...


class Classifies(Protocol):
    def probabilities(self, features: np.ndarray) -> np.ndarray: ...


class GenreHead:
    """A head's inference: standardise, the linear layers (ReLU between), then softmax, or
    for a multi-label head each genre's calibrated sigmoid with parents implied."""

    def __init__(self, state: HeadState, *, multi_label: bool) -> None:
        self.state = state
        self.multi_label = multi_label
        self.mean, self.std = state["mean"], state["std"]
        found = sorted((int(m[1]), m[0]) for name in state if (m := _LINEAR.fullmatch(name)))
        self.layers = [
            (np.ascontiguousarray(state[name].T), state[name.replace("weight", "bias")])
            for _, name in found
        ]
        if multi_label:
            self.scale, self.bias, self.parent = state["scale"], state["bias"], state["parent"]

    def state_arrays(self) -> HeadState:
        return self.state

    def logits(self, features: np.ndarray) -> np.ndarray:
        """The raw (uncalibrated) logits of chunk features (n, d): (n, genres)."""
        x = (np.asarray(features, dtype=np.float32) - self.mean) / self.std
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                x = np.maximum(x, 0)
        return x

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = self.logits(features)
        if self.multi_label:
            return calibrated_sigmoid(logits, self.scale, self.bias, self.parent)
        return softmax(logits)


def calibrated_sigmoid(
    logits: np.ndarray, scale: np.ndarray, bias: np.ndarray, parent: np.ndarray
) -> np.ndarray:
    """Multi-label probabilities of chunk logits (n, genres): each genre's calibrated sigmoid,
    then every parent raised to its most probable style (a style implies its parent)."""
    probs = sigmoid(logits * scale + bias)
    styles = np.flatnonzero(parent >= 0)
    implied = probs.copy()
    # maximum.at: a parent with several styles takes the highest of them all (genres as rows).
    np.maximum.at(implied.T, parent[styles], probs[:, styles].T)
    return implied


@dataclass
class TrainConfig:
    epochs: int = 300
    lr: float = 0.01
    weight_decay: float = 1e-3
    hidden: int = 0
    seed: int = 0


def track_probabilities(head: Classifies, chunk_features: list[np.ndarray]) -> np.ndarray:
    """Mean chunk probabilities per track: (tracks, genres)."""
    return np.stack([head.probabilities(f).mean(0) for f in chunk_features])


def head_version(head: HasState, info: HeadInfo) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(head.state_arrays().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor).tobytes())
    digest.update(json.dumps(info.genres).encode())
    return digest.hexdigest()[:8]


def save_head(head: HasState, info: HeadInfo, path: Path) -> str:
    """Write the head and its info atomically; returns its version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = head_version(head, info)
    metadata = {"info": json.dumps(asdict(info)), "version": version}
    state = {k: np.ascontiguousarray(v) for k, v in head.state_arrays().items()}
    # Readable by all: a head is shared by the web app and the workers, maybe as other users.
    with atomic_write(path, mode=0o644) as temp:
        save_file(state, str(temp), metadata)
    return version


def read_head_info(path: Path) -> HeadInfo:
    """A head file's info (its genres and their spellings) without loading its weights."""
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        return HeadInfo(**json.loads(metadata["info"]))
    except (KeyError, ValueError, TypeError, OSError, SafetensorError) as exc:
        raise ModelError(f"The genre head {Path(path).name} is damaged or missing: {exc}") from None


def parent_indices(info: HeadInfo) -> list[int]:
    """Each genre's parent as an index into info.genres; -1 for a top-level genre (or a parent
    the head does not know)."""
    index = {genre: i for i, genre in enumerate(info.genres)}
    return [index.get(info.parents.get(genre, ""), -1) for genre in info.genres]


def head_layout(in_dim: int, info: HeadInfo) -> dict[str, tuple[int, ...]]:
    """The tensors a head file of this info holds, with their shapes (headnet.py's module)."""
    n, hidden = len(info.genres), info.hidden
    layers = [(1, hidden or n, in_dim)] + ([(4, n, hidden)] if hidden else [])
    shapes: dict[str, tuple[int, ...]] = {"mean": (in_dim,), "std": (in_dim,)}
    for index, out, into in layers:
        shapes[f"net.{index}.weight"] = (out, into)
        shapes[f"net.{index}.bias"] = (out,)
    if info.activation == "sigmoid":
        shapes.update(scale=(n,), bias=(n,), parent=(n,))
    return shapes


def load_head(path: Path) -> tuple[GenreHead, HeadInfo, str]:
    """Load a head file; returns (head, info, version)."""
    if not Path(path).exists():
        raise ModelError(
            f"The genre head {Path(path).name} does not exist; train one with "
            "`python manage.py train_head DIR`."
        )
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
        info = HeadInfo(**json.loads(metadata["info"]))
        state = load_file(str(path))
        layout = head_layout(state["mean"].shape[0], info)
    except (KeyError, ValueError, OSError, SafetensorError) as exc:
        raise ModelError(f"The genre head {Path(path).name} is damaged: {exc}") from None
    shapes = {name: tuple(tensor.shape) for name, tensor in state.items()}
    if shapes != layout:
        raise ModelError(
            f"The genre head {Path(path).name} does not fit its own info: "
            f"it holds {shapes}, its info needs {layout}"
        )
    head = GenreHead(state, multi_label=info.activation == "sigmoid")
    return head, info, metadata.get("version", head_version(head, info))
