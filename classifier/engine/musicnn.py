"""musicnn's MSD model (Pons and Serra, 2019), `build_musicnn` in the wheel, as eval-only numpy.

Input: log-mel patches (batch, frames, 96). The front-end runs musically motivated
convolutions (timbral: wide in frequency, temporal: long in time), each max-pooled over
the whole frequency axis; the mid-end stacks three residual 1-D convolutions over time;
the back-end pools over time and ends in two dense layers. Every layer and constant is
TensorFlow's: batch-norm epsilon 0.001, TF 'same' padding, TF flatten order.

The CNN is frozen (only the genre heads are trained), so this is its one implementation:
inference only, in numpy, which starts without torch's 2 s import and runs faster too. Maps
are kept channels-last, (n, time, channels), so that every convolution is a plain matrix
product over contiguous rows.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from classifier.engine.config import AUDIO, INFERENCE_BATCH
from classifier.engine.errors import ModelError
from classifier.engine.numeric import sigmoid

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

Array = np.ndarray
# The converted weights, named as the torch port named its parameters (and as the cache
# file has stored them since): "timbral.0.conv.weight", "midend.2.bn.running_var", ...
Weights = dict[str, Array]


class MusiCNNOutput(NamedTuple):
    taggram: Array  # (n, 50) sigmoid tag scores
    penultimate: Array  # (n, 200) the batch-normalised dense layer: the embedding
    max_pool: Array  # (n, 753) max over time of the front- and mid-end features
    mean_pool: Array  # (n, 753) mean over time of the same


# --- the parameters ---------------------------------------------------------------------------

_BATCH_NORM = ("weight", "bias", "running_mean", "running_var")


def parameter_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter the model needs, by name, with its shape (torch's layout: conv
    kernels (out, in, kh, kw) or (out, in, k), dense (out, in))."""
    weighted: dict[str, tuple[int, ...]] = {}  # layers with a weight and a bias
    norms = {"input_bn": 1, "pool_bn": 2 * POOL_FEATURES, "dense_bn": BACKEND_UNITS}
    for i, (kh, kw) in enumerate(TIMBRAL_KERNELS):
        weighted[f"timbral.{i}.conv"] = (TIMBRAL_FILTERS, 1, kh, kw)
        norms[f"timbral.{i}.bn"] = TIMBRAL_FILTERS
    for i, k in enumerate(TEMPORAL_KERNELS):
        weighted[f"temporal.{i}.conv"] = (TEMPORAL_FILTERS, 1, k, 1)
        norms[f"temporal.{i}.bn"] = TEMPORAL_FILTERS
    for i, channels in enumerate((FRONTEND_CHANNELS, MIDEND_FILTERS, MIDEND_FILTERS)):
        weighted[f"midend.{i}.conv"] = (MIDEND_FILTERS, channels, MIDEND_KERNEL)
        norms[f"midend.{i}.bn"] = MIDEND_FILTERS
    weighted["dense"] = (BACKEND_UNITS, 2 * POOL_FEATURES)
    weighted["output"] = (N_TAGS, BACKEND_UNITS)
    shapes = {}
    for layer, shape in weighted.items():
        shapes[f"{layer}.weight"], shapes[f"{layer}.bias"] = shape, shape[:1]
    for layer, channels in norms.items():
        shapes.update({f"{layer}.{name}": (channels,) for name in _BATCH_NORM})
    return shapes


def _bn_affine(weights: Weights, layer: str) -> tuple[Array, Array]:
    """Eval batch norm as scale * v + shift, in float64."""
    gamma, beta = (weights[f"{layer}.{n}"].astype(np.float64) for n in ("weight", "bias"))
    mean, var = (weights[f"{layer}.{n}"].astype(np.float64) for n in _BATCH_NORM[2:])
    scale = gamma / np.sqrt(var + TF_BN_EPS)
    return scale, beta - mean * scale


# --- the front-end ---------------------------------------------------------------------------


class SpectralKernel(NamedTuple):
    """A frequency-wide conv kernel ready for `spectral_frequency_max`."""

    products: Array  # (bins, 2, 2 * taps, filters): input DFT taps -> [re, im] of X·conj(W)
    inverse: Array  # (positions, 2 * bins): the inverse real DFT at the valid positions
    taps: int  # the kernel's length in time


class PooledBlock(NamedTuple):
    """A front-end block's eval constants: conv -> ReLU -> batch norm -> max over frequency.

    Eval batch norm is a per-channel affine a*v + b and ReLU is monotonic, so the max over
    frequency of a*relu(z + bias) + b comes from max z where a >= 0 and from min z where
    a < 0. Negating the kernels of the a < 0 channels turns both into one max (exactly:
    negation commutes with rounding), and the bias, ReLU and batch norm then apply to
    (n, time, filters) instead of the 30-96x larger map.
    """

    spectral: SpectralKernel | None  # the timbral blocks (wide in frequency)
    temporal: BandedKernel | None  # the temporal blocks (long in time)
    sign: Array  # (filters,) +1 or -1
    bias: Array
    scale: Array
    shift: Array
    padding: tuple[int, int]  # zero frames before and after the time axis

    def __call__(self, x: Array) -> Array:
        """Normalised input (n, time, 96) -> (n, time, filters)."""
        padded = np.pad(x, ((0, 0), self.padding, (0, 0)))
        if self.spectral is not None:
            extreme = spectral_frequency_max(padded, self.spectral)
        else:
            assert self.temporal is not None
            extreme = temporal_frequency_max(padded, self.temporal)
        relu = np.maximum(extreme * self.sign + self.bias, 0)
        out: Array = relu * self.scale + self.shift
        return out


def pooled_block(weights: Weights, layer: str, padding: tuple[int, int]) -> PooledBlock:
    scale, shift = _bn_affine(weights, f"{layer}.bn")
    sign = np.where(scale >= 0, 1.0, -1.0)
    weight = weights[f"{layer}.conv.weight"].astype(np.float64) * sign[:, None, None, None]
    spectral, temporal = None, None
    if weight.shape[3] > 1:
        spectral = spectral_kernel(weight, AUDIO.n_mels)
    else:  # (filters, 1, taps, 1)
        temporal = temporal_kernel(weight[:, 0, :, 0].T)
    bias = weights[f"{layer}.conv.bias"]
    sign, bias, scale, shift = (c.astype(np.float32) for c in (sign, bias, scale, shift))
    return PooledBlock(spectral, temporal, sign, bias, scale, shift, padding)


# The frequency-wide convolutions are most of the model's arithmetic. Over the frequency
# axis a 'valid' correlation of a 96-band row with a k-band kernel is exact as a circular one
# of length 96 (no position wraps), hence a product of DFTs: per frequency bin, the 7 time
# taps of the input's DFT times the kernel's, then the inverse DFT at the 96-k+1 positions
# only, both as matrix products. That is 2.2x (k=38) and 3.3x (k=67) fewer multiply-adds than
# the direct convolution, and more accurate in float32 (tests/engine/test_musicnn_parity.py).
SPECTRAL_BLOCK = 32  # rows (patch-frames) per step, so that the step's maps stay in cache


def spectral_kernel(weight: Array, width: int) -> SpectralKernel:
    """The DFT form of a (filters, 1, taps, k) kernel over rows `width` bands wide."""
    taps, k = weight.shape[2], weight.shape[3]
    spectrum = np.fft.rfft(weight[:, 0].astype(np.float64), n=width, axis=2)  # (f, taps, bins)
    re, im = spectrum.real, spectrum.imag
    # X·conj(W) = (xr·wr + xi·wi) + i(xi·wr - xr·wi), the input taps ordered [xr..., xi...]
    real_part = np.concatenate([re, im], axis=1)
    imag_part = np.concatenate([-im, re], axis=1)
    products = np.stack([real_part, imag_part]).transpose(3, 0, 2, 1)
    inverse = _inverse_rdft(width, width - k + 1)
    return SpectralKernel(
        np.ascontiguousarray(products, np.float32), inverse.astype(np.float32), taps
    )


@functools.cache
def _inverse_rdft(width: int, positions: int) -> Array:
    """Rows p < positions of the inverse real DFT of length `width`, columns (bin, re/im)."""
    bins = width // 2 + 1
    k = np.arange(bins, dtype=np.float64)
    p = np.arange(positions, dtype=np.float64)
    # A real signal's spectrum is conjugate-symmetric: bins but 0 and width/2 count twice.
    weight = np.where((k == 0) | (2 * k == width), 1.0, 2.0) / width
    angle = 2 * np.pi * p[:, None] * k[None] / width
    rows = np.stack([weight * np.cos(angle), -weight * np.sin(angle)], axis=2)
    rows.flags.writeable = False  # cached: shared by every caller
    return rows.reshape(positions, 2 * bins)


def spectral_frequency_max(padded: Array, kernel: SpectralKernel) -> Array:
    """max over positions of the 'valid' conv of `padded` (n, frames, width) with the kernel:
    (n, frames - taps + 1, filters)."""
    spectrum = np.fft.rfft(padded, axis=2)  # (n, frames, bins)
    parts = np.stack([spectrum.real, spectrum.imag], axis=2).astype(np.float32)
    windows = sliding_window_view(parts, kernel.taps, axis=1)  # (n, time, 2, bins, taps)
    n, time, _, bins, taps = windows.shape
    rows = windows.transpose(3, 0, 1, 2, 4).reshape(bins, 1, n * time, 2 * taps)
    filters, positions = kernel.products.shape[3], kernel.inverse.shape[0]
    pooled = np.empty((n * time, filters), np.float32)
    for start in range(0, n * time, SPECTRAL_BLOCK):
        block = rows[:, :, start : start + SPECTRAL_BLOCK]
        products = np.matmul(block, kernel.products)  # (bins, 2, rows, filters)
        conv = kernel.inverse @ products.reshape(2 * bins, -1)  # (positions, rows * filters)
        pooled[start : start + block.shape[2]] = conv.reshape(positions, -1, filters).max(axis=0)
    return pooled.reshape(n, time, filters)


# A temporal block convolves each frequency band over time. As a product with a banded
# (Toeplitz) matrix, TEMPORAL_BLOCK outputs at a time, it reads the input in place, with no
# im2col copy (9 MB a patch for 128 taps): 1.4-1.9x faster than im2col, though it multiplies
# (block + taps - 1) / taps times as many zeros in.
TEMPORAL_BLOCK = 8


class BandedKernel(NamedTuple):
    """A kernel over time as the banded matrix (step + taps - 1, step * filters) that gives
    `step` consecutive outputs from their step + taps - 1 input frames."""

    band: Array
    taps: int

    @property
    def step(self) -> int:
        return int(self.band.shape[0]) - self.taps + 1


def temporal_kernel(weight: Array, step: int = TEMPORAL_BLOCK) -> BandedKernel:
    """The banded form of a (taps, filters) kernel."""
    taps, filters = weight.shape
    band = np.zeros((step + taps - 1, step, filters), np.float32)
    for t in range(step):
        band[t : t + taps, t] = weight
    return BandedKernel(band.reshape(step + taps - 1, step * filters), taps)


def temporal_frequency_max(padded: Array, kernel: BandedKernel) -> Array:
    """max over the frequency bands of the 'valid' conv over time of `padded` (n, frames, 96)
    with the kernel: (n, frames - taps + 1, filters)."""
    n, frames, bands = padded.shape
    band, taps, step = kernel.band, kernel.taps, kernel.step
    filters = band.shape[1] // step
    time = frames - taps + 1
    blocks = -(-time // step)
    rows = np.zeros((n, bands, blocks * step + taps - 1), np.float32)  # time runs along rows
    rows[:, :, :frames] = padded.transpose(0, 2, 1)
    rows = rows.reshape(n * bands, -1)
    out = np.empty((n, blocks * step, filters), np.float32)
    for start in range(0, blocks * step, step):
        conv = rows[:, start : start + step + taps - 1] @ band  # (n * bands, step * filters)
        out[:, start : start + step] = conv.reshape(n, bands, step, filters).max(axis=1)
    return out[:, :time]


def _tf_same_padding(kernel: int) -> tuple[int, int]:
    # TF 'same' pads k-1 in total, the smaller half before: 63 before and 64 after for 128.
    return (kernel - 1) // 2, kernel // 2


# --- the mid-end and back-end ----------------------------------------------------------------


class MidendConv(NamedTuple):
    """conv over time (kernel 7, zero-padded 3 each side) across all channels -> ReLU -> BN."""

    weight: Array  # (channels, taps * filters): every tap's kernel side by side
    bias: Array
    scale: Array
    shift: Array

    def __call__(self, x: Array) -> Array:
        """(n, time, channels) -> (n, time, 64)."""
        n, time, _ = x.shape
        half = MIDEND_KERNEL // 2
        padded = np.pad(x, ((0, 0), (half, half), (0, 0)))
        # One product for all taps; tap j of output t reads input row t + j.
        taps = (padded @ self.weight).reshape(n, time + 2 * half, MIDEND_KERNEL, -1)
        conv = sum((taps[:, j : j + time, j] for j in range(1, MIDEND_KERNEL)), taps[:, :time, 0])
        out: Array = np.maximum(conv + self.bias, 0) * self.scale + self.shift
        return out


def midend_conv(weights: Weights, layer: str) -> MidendConv:
    weight = weights[f"{layer}.conv.weight"]  # (filters, channels, taps)
    scale, shift = _bn_affine(weights, f"{layer}.bn")
    stacked = weight.transpose(1, 2, 0).reshape(weight.shape[1], -1)
    constants = (stacked, weights[f"{layer}.conv.bias"], scale, shift)
    return MidendConv(*(np.ascontiguousarray(c, np.float32) for c in constants))


class Dense(NamedTuple):
    """x @ weight + bias, with an eval batch norm before or after it folded in."""

    weight: Array  # (in, out)
    bias: Array

    def __call__(self, x: Array) -> Array:
        out: Array = x @ self.weight + self.bias
        return out


def dense(weights: Weights, layer: str, bn_before: str | None = None) -> Dense:
    weight = weights[f"{layer}.weight"].astype(np.float64).T
    bias = weights[f"{layer}.bias"].astype(np.float64)
    if bn_before is not None:  # (x * a + b) @ W = x @ (a W) + b @ W
        scale, shift = _bn_affine(weights, bn_before)
        weight, bias = scale[:, None] * weight, bias + shift @ weight
    return Dense(np.ascontiguousarray(weight, np.float32), bias.astype(np.float32))


class MusiCNN:
    """musicnn MSD in eval: log-mel patches (n, frames, 96) -> tags, embedding, pooled features.

    Every eval constant (folded batch norms, DFT kernels) is computed once, here.
    """

    def __init__(self, weights: Weights) -> None:
        check_weights(weights)
        scale, shift = _bn_affine(weights, "input_bn")
        self.input_scale, self.input_shift = np.float32(scale[0]), np.float32(shift[0])
        timbral = [pooled_block(weights, f"timbral.{i}", (3, 3)) for i in range(2)]
        temporal = [
            pooled_block(weights, f"temporal.{i}", _tf_same_padding(k))
            for i, k in enumerate(TEMPORAL_KERNELS)
        ]
        self.frontend_blocks = (*timbral, *temporal)
        self.midend = tuple(midend_conv(weights, f"midend.{i}") for i in range(3))
        self.dense = dense(weights, "dense", bn_before="pool_bn")
        dense_scale, dense_shift = _bn_affine(weights, "dense_bn")
        self.dense_scale = dense_scale.astype(np.float32)
        self.dense_shift = dense_shift.astype(np.float32)
        self.output = dense(weights, "output")

    def __call__(self, patches: Array) -> MusiCNNOutput:
        """One batch: (n, frames, 96) float32 -> MusiCNNOutput."""
        if patches.ndim != 3 or patches.shape[2] != AUDIO.n_mels:
            raise ModelError(
                f"musicnn expects patches of shape (n, frames, {AUDIO.n_mels}), "
                f"got {tuple(patches.shape)}"
            )
        x = np.asarray(patches, np.float32) * self.input_scale + self.input_shift
        front = np.concatenate([block(x) for block in self.frontend_blocks], axis=2)
        cnn1 = self.midend[0](front)
        cnn2 = self.midend[1](cnn1) + cnn1
        cnn3 = self.midend[2](cnn2) + cnn2
        features = np.concatenate([front, cnn1, cnn2, cnn3], axis=2)  # (n, time, 753)
        max_pool = features.max(axis=1)
        mean_pool = features.mean(axis=1, dtype=np.float32)
        # TF flattens the (753, 2) stack of [max, mean]: the two interleave per feature.
        pooled = np.stack([max_pool, mean_pool], axis=2).reshape(len(x), -1)
        hidden = np.maximum(self.dense(pooled), 0)
        penultimate = hidden * self.dense_scale + self.dense_shift
        taggram = sigmoid(self.output(penultimate))
        return MusiCNNOutput(taggram, penultimate, max_pool, mean_pool)

    def tags(self, penultimate: Array) -> Array:
        """The output layer on embeddings (n, 200): their (n, 50) sigmoid tag scores."""
        return sigmoid(self.output(np.asarray(penultimate, np.float32)))

    def infer(self, patches: Array, batch_size: int = INFERENCE_BATCH) -> MusiCNNOutput:
        """Inference in batches of `batch_size`."""
        data = np.asarray(patches, dtype=np.float32)
        if len(data) == 0:
            raise ModelError("musicnn was given no patches to analyse")
        parts = [self(data[i : i + batch_size]) for i in range(0, len(data), batch_size)]
        return concatenate_outputs(parts)


def concatenate_outputs(parts: list[MusiCNNOutput]) -> MusiCNNOutput:
    """The outputs of consecutive batches as one."""
    return MusiCNNOutput(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def check_weights(weights: Weights) -> None:
    """ModelError unless `weights` holds every parameter, with its shape, and nothing else."""
    expected = parameter_shapes()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = {
        name: (tuple(weights[name].shape), shape)
        for name, shape in expected.items()
        if name in weights and tuple(weights[name].shape) != shape
    }
    if missing or unexpected or wrong:
        raise ModelError(
            "the musicnn weights do not fit the model: "
            f"missing {missing}, unexpected {unexpected}, mis-shaped (got, expected) {wrong}"
        )


# --- TensorFlow checkpoint names -> the model's parameters -----------------------------------

# TF names its layers in creation order (build_musicnn): batch_normalization, conv2d,
# batch_normalization_1, ... This lists each TF layer beside the layer it became here.
_CONV2D = "conv2d"  # TF kernel (kh, kw, in, out) -> (out, in, kh, kw)
_CONV1D = "conv1d"  # TF kernel (7, channels, 1, out) over a 1-channel image -> (out, channels, 7)
_DENSE = "dense"  # TF kernel (in, out) -> (out, in)
_BN = "batch_norm"

TF_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("batch_normalization", "input_bn", _BN),
    ("conv2d", "timbral.0.conv", _CONV2D),
    ("batch_normalization_1", "timbral.0.bn", _BN),
    ("conv2d_1", "timbral.1.conv", _CONV2D),
    ("batch_normalization_2", "timbral.1.bn", _BN),
    ("conv2d_2", "temporal.0.conv", _CONV2D),
    ("batch_normalization_3", "temporal.0.bn", _BN),
    ("conv2d_3", "temporal.1.conv", _CONV2D),
    ("batch_normalization_4", "temporal.1.bn", _BN),
    ("conv2d_4", "temporal.2.conv", _CONV2D),
    ("batch_normalization_5", "temporal.2.bn", _BN),
    ("conv2d_5", "midend.0.conv", _CONV1D),
    ("batch_normalization_6", "midend.0.bn", _BN),
    ("conv2d_6", "midend.1.conv", _CONV1D),
    ("batch_normalization_7", "midend.1.bn", _BN),
    ("conv2d_7", "midend.2.conv", _CONV1D),
    ("batch_normalization_8", "midend.2.bn", _BN),
    ("batch_normalization_9", "pool_bn", _BN),
    ("dense", "dense", _DENSE),
    ("batch_normalization_10", "dense_bn", _BN),
    ("dense_1", "output", _DENSE),
)

_BN_VARIABLES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def _convert_kernel(kind: str, kernel: Array) -> Array:
    if kind == _CONV2D:
        return kernel.transpose(3, 2, 0, 1)
    if kind == _CONV1D:
        if kernel.ndim != 4 or kernel.shape[2] != 1:
            raise ModelError(f"expected a (7, channels, 1, out) kernel, got {kernel.shape}")
        return kernel[:, :, 0, :].transpose(2, 1, 0)
    return kernel.T


def _layer_variables(kind: str) -> dict[str, str]:
    if kind == _BN:
        return _BN_VARIABLES
    return {"kernel": "weight", "bias": "bias"}


def state_dict_from_tf(variables: dict[str, Array]) -> Weights:
    """Map the checkpoint's variables onto the model's parameters, checking every name and shape.

    Raises ModelError on a missing, unused or mis-shaped variable.
    """
    expected = parameter_shapes()
    state: Weights = {}
    used: set[str] = set()
    for tf_layer, layer, kind in TF_LAYERS:
        for tf_name, name in _layer_variables(kind).items():
            key = f"{tf_layer}/{tf_name}"
            if key not in variables:
                raise ModelError(f"the musicnn checkpoint lacks variable {key!r}")
            value = variables[key]
            if tf_name == "kernel":
                value = _convert_kernel(kind, value)
            target = f"{layer}.{name}"
            if tuple(value.shape) != expected[target]:
                raise ModelError(
                    f"checkpoint variable {key!r} has shape {variables[key].shape}, "
                    f"which does not fit {target} {expected[target]}"
                )
            state[target] = np.ascontiguousarray(value, dtype=np.float32)
            used.add(key)
    unused = sorted(set(variables) - used)
    if unused:
        raise ModelError(f"the musicnn checkpoint holds variables the model does not use: {unused}")
    return state
