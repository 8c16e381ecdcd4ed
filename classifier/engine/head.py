"""The genre head: a small classifier on the CNN's per-chunk features.

The head is trained on chunks (every chunk inherits its track's label) and judged on
tracks (the mean of its chunks' probabilities), the same way the verdict is made.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from classifier.engine.errors import ModelError
from classifier.engine.files import atomic_write


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


class GenreHead(torch.nn.Module):
    # Buffers (register_buffer), declared for the type checker.
    mean: torch.Tensor
    std: torch.Tensor
    scale: torch.Tensor  # multi-label only: the calibration of each genre's logit
    bias: torch.Tensor
    parent: torch.Tensor  # multi-label only: each genre's parent index, -1 for top-level

    def __init__(
        self,
        in_dim: int,
        n_genres: int,
        hidden: int = 0,
        *,
        multi_label: bool = False,
        parents: list[int] | None = None,
    ) -> None:
        super().__init__()
        # Standardisation lives in the head so callers feed raw CNN features.
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.multi_label = multi_label
        if multi_label:
            self.register_buffer("scale", torch.ones(n_genres))
            self.register_buffer("bias", torch.zeros(n_genres))
            parent = torch.tensor(parents if parents is not None else [-1] * n_genres)
            self.register_buffer("parent", parent.to(torch.int64))
        if hidden:
            self.net = torch.nn.Sequential(
                torch.nn.Dropout(0.3),
                torch.nn.Linear(in_dim, hidden),
                torch.nn.ReLU(),
                torch.nn.Dropout(0.3),
                torch.nn.Linear(hidden, n_genres),
            )
        else:
            self.net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(in_dim, n_genres))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net((x - self.mean) / self.std)
        return logits

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        self.eval()
        with torch.inference_mode():
            logits = self(torch.from_numpy(np.asarray(features, dtype=np.float32)))
            if self.multi_label:
                return calibrated_sigmoid(logits, self.scale, self.bias, self.parent).numpy()
            return torch.softmax(logits, dim=-1).numpy()


def calibrated_sigmoid(
    logits: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, parent: torch.Tensor
) -> torch.Tensor:
    """Multi-label probabilities of chunk logits (n, genres): each genre's calibrated sigmoid,
    then every parent raised to its most probable style (a style implies its parent)."""
    probs = torch.sigmoid(logits * scale + bias)
    styles = torch.nonzero(parent >= 0).flatten()
    if len(styles) == 0:
        return probs
    index = parent[styles].expand(len(probs), -1)
    return probs.scatter_reduce(1, index, probs[:, styles], reduce="amax", include_self=True)


@dataclass
class TrainConfig:
    epochs: int = 300
    lr: float = 0.01
    weight_decay: float = 1e-3
    hidden: int = 0
    seed: int = 0


def train_head(
    features: np.ndarray, labels: np.ndarray, n_genres: int, config: TrainConfig | None = None
) -> GenreHead:
    """Fit a head on chunk features (n, d) with integer labels (n,), full batch."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    head = GenreHead(x.shape[1], n_genres, config.hidden)
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0).clamp_min(1e-6))
    # Classes may be unbalanced in a curated dataset: weight them so none is ignored.
    counts = torch.bincount(y, minlength=n_genres).float().clamp_min(1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (n_genres * counts))
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    head.train()
    for _ in range(config.epochs):
        optimiser.zero_grad()
        loss_fn(head(x), y).backward()
        optimiser.step()
    return head.eval()


def track_probabilities(head: GenreHead, chunk_features: list[np.ndarray]) -> np.ndarray:
    """Mean chunk probabilities per track: (tracks, genres)."""
    return np.stack([head.probabilities(f).mean(0) for f in chunk_features])


def head_version(head: GenreHead, info: HeadInfo) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(head.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    digest.update(json.dumps(info.genres).encode())
    return digest.hexdigest()[:8]


def save_head(head: GenreHead, info: HeadInfo, path: Path) -> str:
    """Write the head and its info atomically; returns its version."""
    path.parent.mkdir(parents=True, exist_ok=True)
    version = head_version(head, info)
    metadata = {"info": json.dumps(asdict(info)), "version": version}
    # Readable by all: a head is shared by the web app and the workers, maybe as other users.
    with atomic_write(path, mode=0o644) as temp:
        save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(temp), metadata)
    return version


def read_head_info(path: Path) -> HeadInfo:
    """A head file's info (its genres and their spellings) without loading its weights."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return HeadInfo(**json.loads(metadata["info"]))
    except (KeyError, ValueError, TypeError, OSError, SafetensorError) as exc:
        raise ModelError(f"The genre head {Path(path).name} is damaged or missing: {exc}") from None


def parent_indices(info: HeadInfo) -> list[int]:
    """Each genre's parent as an index into info.genres; -1 for a top-level genre (or a parent
    the head does not know)."""
    index = {genre: i for i, genre in enumerate(info.genres)}
    return [index.get(info.parents.get(genre, ""), -1) for genre in info.genres]


def load_head(path: Path) -> tuple[GenreHead, HeadInfo, str]:
    """Load a head file; returns (head, info, version)."""
    if not Path(path).exists():
        raise ModelError(
            f"The genre head {Path(path).name} does not exist; train one with "
            "`python manage.py train_head DIR`."
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        info = HeadInfo(**json.loads(metadata["info"]))
        state = load_file(str(path))
    except (KeyError, ValueError, OSError, SafetensorError) as exc:
        raise ModelError(f"The genre head {Path(path).name} is damaged: {exc}") from None
    head = GenreHead(
        state["mean"].shape[0],
        len(info.genres),
        info.hidden,
        multi_label=info.activation == "sigmoid",
        parents=parent_indices(info),
    )
    try:
        head.load_state_dict(state)
    except (RuntimeError, ValueError) as exc:
        raise ModelError(
            f"The genre head {Path(path).name} does not fit its own info: {exc}"
        ) from None
    return head.eval(), info, metadata.get("version", head_version(head, info))
