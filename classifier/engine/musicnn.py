"""A torch port of musicnn's MSD model (Pons and Serra, 2019), `build_musicnn` in the wheel.

Input: log-mel patches (batch, frames, 96). The front-end runs musically motivated
convolutions (timbral: wide in frequency, temporal: long in time), each max-pooled over
the whole frequency axis; the mid-end stacks three residual 1-D convolutions over time;
the back-end pools over time and ends in two dense layers. Every layer and constant is
TensorFlow's: batch-norm epsilon 0.001, TF 'same' padding, TF flatten order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classifier.engine.config import AUDIO, INFERENCE_BATCH
from classifier.engine.errors import ModelError

TF_BN_EPS = 1e-3
N_TAGS = 50
TIMBRAL_FILTERS = 204  # int(1.6 * 128)
TEMPORAL_FILTERS = 51  # int(1.6 * 32)
TIMBRAL_KERNELS = ((7, int(0.4 * AUDIO.n_mels)), (7, int(0.7 * AUDIO.n_mels)))  # (7,38), (7,67)
TEMPORAL_KERNELS = (128, 64, 32)
MIDEND_FILTERS = 64
MIDEND_KERNEL = 7
BACKEND_UNITS = 200
FRONTEND_CHANNELS = 2 * TIMBRAL_FILTERS + 3 * TEMPORAL_FILTERS  # 561
POOL_FEATURES = FRONTEND_CHANNELS + 3 * MIDEND_FILTERS  # 753
# Patches that go through the front-end together in eval (see MusiCNN.forward).
FRONTEND_GROUP = 1


class MusiCNNOutput(NamedTuple):
    taggram: torch.Tensor  # (n, 50) sigmoid tag scores
    penultimate: torch.Tensor  # (n, 200) the batch-normalised dense layer: the embedding
    max_pool: torch.Tensor  # (n, 753) max over time of the front- and mid-end features
    mean_pool: torch.Tensor  # (n, 753) mean over time of the same


def _bn(channels: int) -> nn.Module:
    return nn.BatchNorm1d(channels, eps=TF_BN_EPS)


class SpectralKernel(NamedTuple):
    """A frequency-wide conv kernel ready for `spectral_frequency_max`."""

    products: torch.Tensor  # (bins, 2, 2 * taps, filters): input DFT taps -> [re, im] of X·conj(W)
    inverse: torch.Tensor  # (positions, 2 * bins): the inverse real DFT at the valid positions
    taps: int  # the kernel's length in time


class PooledKernel(NamedTuple):
    """A front-end block's eval constants, computed once per batch rather than once per patch."""

    weight: torch.Tensor  # the conv kernel, negated where batch norm's scale is negative
    sign: torch.Tensor  # (filters,) +1 or -1
    scale: torch.Tensor  # batch norm as an affine scale * v + shift
    shift: torch.Tensor
    spectral: SpectralKernel | None  # for kernels wide in frequency (the timbral blocks)


class FrequencyPooledConv(nn.Module):
    """conv2d -> ReLU -> batch norm -> max over the whole frequency axis, as one front-end block.

    `time_padding` is (before, after) zero frames around the time axis; frequency is 'valid'.
    """

    def __init__(self, filters: int, kernel: tuple[int, int], time_padding: tuple[int, int]):
        super().__init__()
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPS)
        self.time_padding = time_padding

    def forward(self, x: torch.Tensor, kernel: PooledKernel | None = None) -> torch.Tensor:
        """(n, 1, time, freq) -> (n, filters, time); `kernel` is this block's eval_kernel()."""
        padded = F.pad(x, (0, 0, *self.time_padding))
        if self.training:
            pooled: torch.Tensor = self.bn(F.relu(self.conv(padded))).amax(dim=3)
            return pooled
        kernel = kernel or self.eval_kernel()
        if kernel.spectral is not None:
            flipped = spectral_frequency_max(padded, kernel.spectral)
        else:
            flipped = F.conv2d(padded, kernel.weight).amax(dim=3)
        extreme = flipped * kernel.sign[:, None]
        bias = self.conv.bias
        assert bias is not None  # nn.Conv2d's default bias=True
        return F.relu(extreme + bias[:, None]) * kernel.scale[:, None] + kernel.shift[:, None]

    def eval_kernel(self) -> PooledKernel:
        # Eval: batch norm is a per-channel affine a*v + b and ReLU is monotonic, so the max
        # over frequency of a*relu(z + bias) + b comes from max z where a >= 0 and from min z
        # where a < 0. Negating the kernels of the a < 0 channels turns both into one max
        # (exactly: negation commutes with rounding), and the bias, ReLU and batch norm then
        # apply to (n, filters, time) instead of the 30-96x larger map.
        scale, shift = _bn_affine(self.bn)
        sign = torch.where(scale >= 0, 1.0, -1.0)
        weight = self.conv.weight * sign[:, None, None, None]
        spectral = (
            spectral_kernel(weight, AUDIO.n_mels) if SPECTRAL and weight.shape[3] > 1 else None
        )
        return PooledKernel(weight, sign, scale, shift, spectral)


# The frequency-wide convolutions are most of the model's arithmetic. Over the frequency
# axis a 'valid' correlation of a 96-band row with a k-band kernel is exact as a circular one
# of length 96 (no position wraps), hence a product of DFTs: per frequency bin, the 7 time
# taps of the input's DFT times the kernel's, then the inverse DFT at the 96-k+1 positions
# only, both as matrix products. That is 2.2x (k=38) and 3.3x (k=67) fewer multiply-adds than
# the direct convolution, and more accurate in float32 (tests/engine/test_musicnn_parity.py).
SPECTRAL = True  # bench/musicnn_speed.py compares it with the direct convolution
SPECTRAL_BLOCK = 64  # rows (patch-frames) per step, so that the step's maps stay small


def spectral_kernel(weight: torch.Tensor, width: int) -> SpectralKernel:
    """The DFT form of a (filters, 1, taps, k) kernel over rows `width` bands wide."""
    taps, k = weight.shape[2], weight.shape[3]
    spectrum = torch.fft.rfft(weight[:, 0].double(), n=width, dim=2)  # (filters, taps, bins)
    re, im = spectrum.real, spectrum.imag
    # X·conj(W) = (xr·wr + xi·wi) + i(xi·wr - xr·wi), the input taps ordered [xr..., xi...]
    real_part = torch.cat([re, im], dim=1)
    imag_part = torch.cat([-im, re], dim=1)
    products = torch.stack([real_part, imag_part]).permute(3, 0, 2, 1)
    inverse = _inverse_rdft(width, width - k + 1)
    return SpectralKernel(products.to(weight.dtype).contiguous(), inverse.to(weight.dtype), taps)


@functools.cache
def _inverse_rdft(width: int, positions: int) -> torch.Tensor:
    """Rows p < positions of the inverse real DFT of length `width`, columns (bin, re/im)."""
    with torch.inference_mode(False):  # cached, so it must serve calls outside inference mode
        bins = width // 2 + 1
        k = torch.arange(bins, dtype=torch.float64)
        p = torch.arange(positions, dtype=torch.float64)
        # A real signal's spectrum is conjugate-symmetric: bins but 0 and width/2 count twice.
        weight = torch.where((k == 0) | (2 * k == width), 1.0, 2.0) / width
        angle = 2 * torch.pi * p[:, None] * k[None] / width
        rows = torch.stack([weight * torch.cos(angle), -weight * torch.sin(angle)], dim=2)
        return rows.reshape(positions, 2 * bins)


def spectral_frequency_max(padded: torch.Tensor, kernel: SpectralKernel) -> torch.Tensor:
    """max over positions of conv2d(padded, W) for W's SpectralKernel: (n, 1, frames, width)
    -> (n, filters, frames - taps + 1)."""
    spectrum = torch.fft.rfft(padded[:, 0], dim=2)  # (n, frames, bins)
    parts = torch.stack([spectrum.real, spectrum.imag], dim=2)  # (n, frames, 2, bins)
    windows = parts.unfold(1, kernel.taps, 1)  # (n, time, 2, bins, taps)
    n, time, _, bins, taps = windows.shape
    rows = windows.permute(3, 0, 1, 2, 4).reshape(bins, 1, n * time, 2 * taps)
    filters, positions = kernel.products.shape[3], kernel.inverse.shape[0]
    pooled = []
    for start in range(0, n * time, SPECTRAL_BLOCK):
        products = torch.matmul(rows[:, :, start : start + SPECTRAL_BLOCK], kernel.products)
        conv = kernel.inverse @ products.reshape(2 * bins, -1)  # (positions, rows * filters)
        pooled.append(conv.view(positions, -1, filters).amax(0))
    return torch.cat(pooled).view(n, time, filters).transpose(1, 2)


def _tf_same_padding(kernel: int) -> tuple[int, int]:
    # TF 'same' pads k-1 in total, the smaller half before: 63 before and 64 after for 128.
    return (kernel - 1) // 2, kernel // 2


def _bn_affine(bn: nn.BatchNorm1d | nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    running_mean, running_var = bn.running_mean, bn.running_var
    assert running_mean is not None and running_var is not None  # track_running_stats=True
    scale = bn.weight / torch.sqrt(running_var + bn.eps)
    return scale, bn.bias - running_mean * scale


class MidendConv(nn.Module):
    """conv over time (kernel 7, zero-padded 3 each side) across all channels -> ReLU -> BN."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, MIDEND_FILTERS, MIDEND_KERNEL, padding=MIDEND_KERNEL // 2
        )
        self.bn = _bn(MIDEND_FILTERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.bn(F.relu(self.conv(x)))
        return out


class MusiCNN(nn.Module):
    """musicnn MSD: log-mel patches (n, frames, 96) -> tags, embedding and pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.timbral = nn.ModuleList(
            FrequencyPooledConv(TIMBRAL_FILTERS, kernel, (3, 3)) for kernel in TIMBRAL_KERNELS
        )
        self.temporal = nn.ModuleList(
            FrequencyPooledConv(TEMPORAL_FILTERS, (k, 1), _tf_same_padding(k))
            for k in TEMPORAL_KERNELS
        )
        self.midend = nn.ModuleList(
            [MidendConv(FRONTEND_CHANNELS), MidendConv(MIDEND_FILTERS), MidendConv(MIDEND_FILTERS)]
        )
        self.pool_bn = _bn(2 * POOL_FEATURES)
        self.dense = nn.Linear(2 * POOL_FEATURES, BACKEND_UNITS)
        self.dense_bn = _bn(BACKEND_UNITS)
        self.output = nn.Linear(BACKEND_UNITS, N_TAGS)

    def forward(self, patches: torch.Tensor) -> MusiCNNOutput:
        if patches.ndim != 3 or patches.shape[2] != AUDIO.n_mels:
            raise ModelError(
                f"musicnn expects patches of shape (n, frames, {AUDIO.n_mels}), "
                f"got {tuple(patches.shape)}"
            )
        x = self.input_bn(patches.unsqueeze(1))  # (n, 1, time, freq)
        # The front-end's conv maps are 30-96x its output (9 MB a patch for the first timbral
        # block). In eval, one patch at a time keeps them in cache: 1.7-1.8x faster than a
        # whole batch of 16 or 64 on a 2-core CPU (bench/musicnn_speed.py), each step ~20 ms
        # of convolution against microseconds of loop, and memory stays flat in batch size.
        step = len(x) if self.training else FRONTEND_GROUP
        kernels = None if self.training else [b.eval_kernel() for b in self.frontend_blocks]
        front = torch.cat([self.frontend(x[i : i + step], kernels) for i in range(0, len(x), step)])
        cnn1 = self.midend[0](front)
        cnn2 = self.midend[1](cnn1) + cnn1
        cnn3 = self.midend[2](cnn2) + cnn2
        features = torch.cat([front, cnn1, cnn2, cnn3], dim=1)  # (n, 753, time)
        max_pool = features.amax(dim=2)
        mean_pool = features.mean(dim=2)
        # TF flattens the (753, 2) stack of [max, mean]: the two interleave per feature.
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)
        hidden = self.dense(self.pool_bn(pooled))
        penultimate = self.dense_bn(F.relu(hidden))
        logits = self.output(penultimate)
        return MusiCNNOutput(torch.sigmoid(logits), penultimate, max_pool, mean_pool)

    @property
    def frontend_blocks(self) -> tuple[FrequencyPooledConv, ...]:
        return (*self.timbral, *self.temporal)

    def frontend(self, x: torch.Tensor, kernels: list[PooledKernel] | None = None) -> torch.Tensor:
        """Normalised input (n, 1, time, freq) -> (n, 561, time) front-end features."""
        per_block: Sequence[PooledKernel | None] = kernels or [None] * len(self.frontend_blocks)
        return torch.cat(
            [
                block(x, kernel)
                for block, kernel in zip(self.frontend_blocks, per_block, strict=True)
            ],
            dim=1,
        )

    def infer(
        self, patches: np.ndarray | torch.Tensor, batch_size: int = INFERENCE_BATCH
    ) -> MusiCNNOutput:
        """Run eval-mode inference in batches of `batch_size`; returns float32 CPU tensors."""
        if self.training:
            raise ModelError("MusiCNN.infer needs eval mode (call .eval() first)")
        data = torch.as_tensor(patches, dtype=torch.float32)
        if len(data) == 0:
            raise ModelError("musicnn was given no patches to analyse")
        with torch.inference_mode():
            parts = [self(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]
        return MusiCNNOutput(*(torch.cat(column) for column in zip(*parts, strict=True)))


# --- TensorFlow checkpoint names -> torch parameters ---------------------------------------

# TF names its layers in creation order (build_musicnn): batch_normalization, conv2d,
# batch_normalization_1, ... This lists each TF layer beside the torch module it became.
_CONV2D = "conv2d"  # TF kernel (kh, kw, in, out) -> torch (out, in, kh, kw)
_CONV1D = "conv1d"  # TF kernel (7, channels, 1, out) over a 1-channel image -> (out, channels, 7)
_DENSE = "dense"  # TF kernel (in, out) -> torch (out, in)
_BATCH_NORM = "batch_norm"

TF_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("batch_normalization", "input_bn", _BATCH_NORM),
    ("conv2d", "timbral.0.conv", _CONV2D),
    ("batch_normalization_1", "timbral.0.bn", _BATCH_NORM),
    ("conv2d_1", "timbral.1.conv", _CONV2D),
    ("batch_normalization_2", "timbral.1.bn", _BATCH_NORM),
    ("conv2d_2", "temporal.0.conv", _CONV2D),
    ("batch_normalization_3", "temporal.0.bn", _BATCH_NORM),
    ("conv2d_3", "temporal.1.conv", _CONV2D),
    ("batch_normalization_4", "temporal.1.bn", _BATCH_NORM),
    ("conv2d_4", "temporal.2.conv", _CONV2D),
    ("batch_normalization_5", "temporal.2.bn", _BATCH_NORM),
    ("conv2d_5", "midend.0.conv", _CONV1D),
    ("batch_normalization_6", "midend.0.bn", _BATCH_NORM),
    ("conv2d_6", "midend.1.conv", _CONV1D),
    ("batch_normalization_7", "midend.1.bn", _BATCH_NORM),
    ("conv2d_7", "midend.2.conv", _CONV1D),
    ("batch_normalization_8", "midend.2.bn", _BATCH_NORM),
    ("batch_normalization_9", "pool_bn", _BATCH_NORM),
    ("dense", "dense", _DENSE),
    ("batch_normalization_10", "dense_bn", _BATCH_NORM),
    ("dense_1", "output", _DENSE),
)

_BN_VARIABLES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _convert_kernel(kind: str, kernel: np.ndarray) -> np.ndarray:
    if kind == _CONV2D:
        return kernel.transpose(3, 2, 0, 1)
    if kind == _CONV1D:
        if kernel.ndim != 4 or kernel.shape[2] != 1:
            raise ModelError(f"expected a (7, channels, 1, out) kernel, got {kernel.shape}")
        return kernel[:, :, 0, :].transpose(2, 1, 0)
    return kernel.T


def _layer_variables(kind: str) -> dict[str, str]:
    if kind == _BATCH_NORM:
        return _BN_VARIABLES
    return {"kernel": "weight", "bias": "bias"}


def state_dict_from_tf(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map the checkpoint's variables onto MusiCNN's state dict, checking every name and shape.

    Raises ModelError on a missing, unused or mis-shaped variable.
    """
    expected = MusiCNN().state_dict()
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for tf_layer, module, kind in TF_LAYERS:
        for tf_name, torch_name in _layer_variables(kind).items():
            key = f"{tf_layer}/{tf_name}"
            if key not in variables:
                raise ModelError(f"the musicnn checkpoint lacks variable {key!r}")
            value = variables[key]
            if tf_name == "kernel":
                value = _convert_kernel(kind, value)
            target = f"{module}.{torch_name}"
            if tuple(value.shape) != tuple(expected[target].shape):
                raise ModelError(
                    f"checkpoint variable {key!r} has shape {variables[key].shape}, "
                    f"which does not fit {target} {tuple(expected[target].shape)}"
                )
            state[target] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
            used.add(key)
    unused = sorted(set(variables) - used)
    if unused:
        raise ModelError(f"the musicnn checkpoint holds variables the model does not use: {unused}")
    for name, tensor in expected.items():  # BN's num_batches_tracked: not in TF
        state.setdefault(name, torch.zeros_like(tensor))
    return state


def musicnn_from_state_dict(state: dict[str, torch.Tensor]) -> MusiCNN:
    """A MusiCNN in eval mode holding `state`; ModelError on missing or unexpected keys."""
    model = MusiCNN()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the musicnn weights do not fit the model: {exc}") from exc
    return model.eval()
