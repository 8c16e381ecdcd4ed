"""The activations that inference shares (the CNN's tags, the genre heads' probabilities)."""

from __future__ import annotations

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), elementwise, in x's precision."""
    with np.errstate(over="ignore"):  # e^-x overflows to inf for x < -88: the result is 0
        out: np.ndarray = 1 / (1 + np.exp(-x))
    return out


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis."""
    exp = np.exp(x - x.max(axis=-1, keepdims=True))
    out: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return out
