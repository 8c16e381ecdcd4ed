"""The genre head as a torch module, to train it (the only part of the engine that imports torch).

Its probabilities are head.py's numpy inference on its own weights: one implementation of the
head's math, the one a classify run uses. The differentiable calibrated sigmoid below is the
same function for the fitting's gradients; tests/engine/test_multilabel.py holds them equal.
"""

from __future__ import annotations

import numpy as np
import torch

from classifier.engine.head import GenreHead, HeadState, TrainConfig


class TrainableHead(torch.nn.Module):
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
        # The layers' indices name the saved tensors (head.head_layout): keep them.
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

    def state_arrays(self) -> HeadState:
        return {name: t.detach().cpu().numpy().copy() for name, t in self.state_dict().items()}

    def inference(self) -> GenreHead:
        """The trained head as the engine runs it."""
        return GenreHead(self.state_arrays(), multi_label=self.multi_label)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return self.inference().probabilities(features)


def torch_calibrated_sigmoid(
    logits: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, parent: torch.Tensor
) -> torch.Tensor:
    """head.calibrated_sigmoid, differentiable: for fitting the calibration."""
    probs = torch.sigmoid(logits * scale + bias)
    styles = torch.nonzero(parent >= 0).flatten()
    if len(styles) == 0:
        return probs
    index = parent[styles].expand(len(probs), -1)
    return probs.scatter_reduce(1, index, probs[:, styles], reduce="amax", include_self=True)


def train_head(
    features: np.ndarray, labels: np.ndarray, n_genres: int, config: TrainConfig | None = None
) -> TrainableHead:
    """Fit a head on chunk features (n, d) with integer labels (n,), full batch."""
    config = config or TrainConfig()
    torch.manual_seed(config.seed)
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    head = TrainableHead(x.shape[1], n_genres, config.hidden)
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
