"""The musicnn input: log-mel patches of 187 frames, computed as the pretrained model saw them.

Recipe (shared/reference/musicnn_msd/config.json, i.e. musicnn's own extractor on librosa):
16 kHz mono, centred STFT with n_fft 512 and hop 256 (zero padding at both ends, librosa
0.11's "constant" pad mode: the reference patches match it exactly, "reflect" is off by up
to 1.6 in the first and last frame), power spectrogram, librosa's Slaney mel filterbank
(96 bands), mel power cast to float16, then log10(10000 * power + 1) in float32.
Non-overlapping patches; the trailing partial patch is dropped; a track shorter than one
patch is repeat-padded (musicnn trained with "pad_short": "repeat-pad").

Everything streams: decoded blocks -> frames -> patches, so a one-hour file never holds
its samples, only (at most) its patches as float16 mel power (~43 MB per hour).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .audio import AudioFile, open_audio
from .blas import one_blas_thread
from .config import AUDIO, DEFAULT_CHUNK_BUDGET
from .errors import EmptyAudioError

N_FFT = AUDIO.n_fft
HOP = AUDIO.hop_length
PATCH = AUDIO.patch_frames
# A patch whose loudest log-mel value stays below this is silence. Digital silence gives
# exactly 0 and 16-bit dither (+-1 LSB) 2.6e-4 (the smallest float16 power), while a
# -80 dBFS tone already reaches 0.02 and a -60 dBFS one 0.77: quiet music still votes.
SILENCE_LEVEL = 1e-3
# Frames transformed at once: bounds the float64 scratch of the FFT (~4 MB).
_BATCH = 1024
_MIN_ROWS = 64


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """librosa.filters.mel defaults (Slaney scale and norm), float32, (n_mels, 1 + n_fft/2).

    librosa's own steps, in numpy (the tests hold them to librosa bit for bit): importing
    librosa's filters pulls in scipy.signal and numba, over a second of a run's start-up.
    """
    rate, n_mels = AUDIO.sample_rate, AUDIO.n_mels
    fft_freqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / rate)
    mels = np.linspace(_hz_to_mel(0.0), _hz_to_mel(rate / 2), n_mels + 2)
    mel_f = _mel_to_hz(mels)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, 1 + N_FFT // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


# The Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's constants).
_MEL_STEP_HZ = 200.0 / 3
_LOG_FROM_HZ = 1000.0
_LOG_FROM_MEL = _LOG_FROM_HZ / _MEL_STEP_HZ
_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: float) -> float:
    if hz >= _LOG_FROM_HZ:
        return float(_LOG_FROM_MEL + np.log(hz / _LOG_FROM_HZ) / _LOG_STEP)
    return hz / _MEL_STEP_HZ


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _MEL_STEP_HZ * mels
    log = mels >= _LOG_FROM_MEL
    freqs[log] = _LOG_FROM_HZ * np.exp(_LOG_STEP * (mels[log] - _LOG_FROM_MEL))
    return freqs


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """scipy's periodic Hann window (librosa's get_window("hann", fftbins=True)), its way:
    the symmetric window of n_fft + 1 points as a sum of cosines, the last point dropped."""
    fac = np.linspace(-np.pi, np.pi, N_FFT + 1)
    window = np.zeros(N_FFT + 1)
    for k, a in enumerate((0.5, 0.5)):
        window += a * np.cos(k * fac)
    return window[:-1]


def mel_power(frames: np.ndarray) -> np.ndarray:
    """Raw sample frames (T, n_fft) -> float16 mel power (T, n_mels).

    The operations, dtypes and operand layouts are librosa's (float64 windowing, complex64
    spectrum, a float32 product with the filterbank), so the float16 rounding lands where it
    did for the reference.
    """
    count = len(frames)
    if count < _MIN_ROWS:
        # BLAS takes another code path (other rounding) for a few rows; padding keeps a
        # frame's value independent of how many frames are computed with it.
        frames = np.concatenate([frames, np.zeros((_MIN_ROWS - count, N_FFT), frames.dtype)])
    spectrum = np.fft.rfft(_window() * frames, axis=-1).astype(np.complex64)
    power = np.abs(spectrum) ** 2
    # librosa contracts with np.einsum; the same float32 product through matmul gives the
    # same bits (the tests compare with the reference) without einsum's erratic dispatch.
    mel: np.ndarray = mel_basis() @ power.T
    return mel.T[:count].astype(np.float16)


def compress(power: np.ndarray) -> np.ndarray:
    """float16 mel power -> the model's log-mel input, float32."""
    return np.log10(10000 * power.astype(np.float32) + 1)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(frames, n_mels) float32 log-mel of a whole 16 kHz mono signal; 1 + n // hop frames."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    padded = np.pad(samples, N_FFT // 2)
    windows = sliding_window_view(padded, N_FFT)[::HOP][: 1 + samples.size // HOP]
    return _log_mel_of(windows)


def _log_mel_of(windows: np.ndarray) -> np.ndarray:
    out = np.empty((len(windows), AUDIO.n_mels), np.float32)
    with one_blas_thread():
        for start in range(0, len(windows), _BATCH):
            out[start : start + _BATCH] = compress(mel_power(windows[start : start + _BATCH]))
    return out


class MelStream:
    """The frames of log_mel, computed from a signal that arrives block by block.

    push() returns the frames whose window is complete; finish() adds the centre padding
    at the end and returns the rest. Only the last n_fft - hop samples are carried over.
    Frames come as float16 mel power (see compress()), which is what patches are kept as.
    """

    def __init__(self) -> None:
        self._carry = np.zeros(N_FFT // 2, np.float32)  # the leading centre padding
        self._fed = 0
        self._emitted = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._fed += block.size
        buffer = np.concatenate([self._carry, block])
        count = (buffer.size - N_FFT) // HOP + 1 if buffer.size >= N_FFT else 0
        return self._frames(buffer, count)

    def finish(self) -> np.ndarray:
        buffer = np.concatenate([self._carry, np.zeros(N_FFT // 2, np.float32)])
        return self._frames(buffer, 1 + self._fed // HOP - self._emitted)

    def _frames(self, buffer: np.ndarray, count: int) -> np.ndarray:
        frames = np.empty((count, AUDIO.n_mels), np.float16)
        if count:
            windows = sliding_window_view(buffer, N_FFT)[::HOP][:count]
            with one_blas_thread():
                for start in range(0, count, _BATCH):
                    frames[start : start + _BATCH] = mel_power(windows[start : start + _BATCH])
        self._carry = buffer[count * HOP :].copy()
        self._emitted += count
        return frames


def iter_log_mel(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Streaming log_mel: consumes sample blocks (e.g. iter_decode's), yields frame blocks.

    Concatenated, the output equals log_mel(np.concatenate(blocks)).
    """
    stream = MelStream()
    for block in blocks:
        frames = stream.push(block)
        if len(frames):
            yield compress(frames)
    frames = stream.finish()
    if len(frames):
        yield compress(frames)


class Patcher:
    """Groups frames into non-overlapping patches; repeat-pads a track shorter than one."""

    def __init__(self) -> None:
        self._pending: list[np.ndarray] = []
        self._pending_frames = 0
        self.emitted = 0

    def push(self, frames: np.ndarray) -> list[np.ndarray]:
        if len(frames):
            self._pending.append(frames)
            self._pending_frames += len(frames)
        patches: list[np.ndarray] = []
        while self._pending_frames >= PATCH:
            joined = np.concatenate(self._pending)
            patches.append(joined[:PATCH].copy())  # a view would pin all of `joined`
            self._pending = [joined[PATCH:]]
            self._pending_frames -= PATCH
        self.emitted += len(patches)
        return patches

    def finish(self) -> list[np.ndarray]:
        """The repeat-padded patch of a short track; the partial tail of a longer one is dropped."""
        if self.emitted or not self._pending_frames:
            return []
        frames = np.concatenate(self._pending)
        repeats = -(-PATCH // len(frames))
        self.emitted = 1
        return [np.concatenate([frames] * repeats)[:PATCH]]


def is_silent(patch: np.ndarray) -> bool:
    """Digital silence (log-mel exactly 0, or dither-level noise); quiet music is not."""
    return bool(patch.size == 0 or float(np.max(patch)) < SILENCE_LEVEL)


def spread(n: int, budget: int) -> list[int]:
    """`budget` indices evenly over range(n), first and last included; all if n <= budget."""
    if n <= budget:
        return list(range(n))
    if budget <= 0:
        return []
    if budget == 1:
        return [(n - 1) // 2]
    # i * (n - 1) / (budget - 1) rounded half up; steps exceed 1, so no index repeats.
    return [(i * (n - 1) + (budget - 1) // 2) // (budget - 1) for i in range(budget)]


@dataclass
class Chunks:
    patches: np.ndarray  # (k, 187, 96) float32 log-mel
    starts: np.ndarray  # (k,) seconds from the start of the track
    duration: float  # seconds of decoded audio
    total: int  # non-silent patches in the whole track
    silent: int  # silent patches, left out
    warnings: list[str] = field(default_factory=list)  # what decoding had to put up with


def extract_chunks(
    path: str | Path,
    budget: int | None = DEFAULT_CHUNK_BUDGET,
    on_progress: Callable[[float], None] | None = None,
) -> Chunks:
    """Decode, patch and pick the track's chunks: non-silent ones, `budget` evenly spread.

    budget None keeps every non-silent chunk (--full). Raises the AudioError subclasses of
    iter_decode, and EmptyAudioError when every chunk is silent; what decoding put up with
    (junk after the audio) is in the Chunks' warnings.
    A track with many more chunks than the budget is not decoded whole: each chosen chunk is
    decoded by seeking (see sparse_chunks), so a long track costs what a short one does.
    """
    with opened_chunks(path, budget, on_progress) as (chunks, _):
        return chunks


@contextmanager
def opened_chunks(
    path: str | Path,
    budget: int | None = DEFAULT_CHUNK_BUDGET,
    on_progress: Callable[[float], None] | None = None,
) -> Iterator[tuple[Chunks, AudioFile]]:
    """extract_chunks(), and the file still open, for what else is read from it (its tags).

    The file is opened once for all of it, but for a track that cannot be sought after all.
    """
    path = Path(path)
    warnings: list[str] = []
    on_progress = _rising(on_progress)  # a fallback starts over: the bar must not go back
    with open_audio(path, warnings) as audio:
        if budget is not None and SEEKING:
            sparse = sparse_chunks(audio, budget, on_progress)
            if sparse is not None:
                sparse.warnings[:0] = warnings
                yield sparse, audio
                return
            if audio.seek_problem is not None:
                _log.warning(
                    "%s cannot be sought: %s; decoding it whole", path.name, audio.seek_problem
                )
        if audio.fresh:
            blocks = audio.blocks(on_progress=on_progress, warnings=warnings)
            yield _streamed_chunks(blocks, path, budget, warnings), audio
            return
    # Sought part way and then refused: the streamed pass needs the file from its start.
    with open_audio(path) as audio:
        blocks = audio.blocks(on_progress=on_progress, warnings=warnings)
        yield _streamed_chunks(blocks, path, budget, warnings), audio


def _rising(callback: Callable[[float], None] | None) -> Callable[[float], None] | None:
    """`callback`, called only with fractions above those it was called with before."""
    if callback is None:
        return None
    reached = [0.0]

    def report(fraction: float) -> None:
        if fraction > reached[0]:
            reached[0] = fraction
            callback(fraction)

    return report


# Whether long tracks are sought (the benchmark turns it off to time the streamed pass).
SEEKING = True
_log = logging.getLogger(__name__)


def _streamed_chunks(
    blocks: Iterable[np.ndarray], path: Path, budget: int | None, warnings: list[str]
) -> Chunks:
    stream, patcher, picker = MelStream(), Patcher(), _Collector()
    samples = 0
    for block in blocks:
        samples += block.size
        picker.take(patcher.push(stream.push(block)))
    picker.take(patcher.push(stream.finish()))
    picker.take(patcher.finish())
    if not picker.kept:
        raise EmptyAudioError(f"{path.name} contains only silence")
    chosen = range(len(picker.kept)) if budget is None else spread(len(picker.kept), budget)
    patches = np.empty((len(chosen), PATCH, AUDIO.n_mels), np.float32)
    for row, index in enumerate(chosen):
        patches[row] = compress(picker.kept[index])
    starts = np.array([picker.positions[i] for i in chosen], np.float64) * AUDIO.patch_seconds
    return Chunks(
        patches=patches,
        starts=starts,
        duration=samples / AUDIO.sample_rate,
        total=len(picker.kept),
        silent=picker.silent,
        warnings=warnings,
    )


def streamed_chunks(
    path: Path, budget: int | None = None, on_progress: Callable[[float], None] | None = None
) -> Chunks:
    """The chunks of the streamed pass, whatever the track's length (what seeking is held to)."""
    warnings: list[str] = []
    with open_audio(path, warnings) as audio:
        blocks = audio.blocks(on_progress=on_progress, warnings=warnings)
        return _streamed_chunks(blocks, path, budget, warnings)


# Seeking pays once a track holds this many times the budget's chunks.
SPARSE_FROM = 2


def sparse_chunks(
    audio: AudioFile, budget: int, on_progress: Callable[[float], None] | None = None
) -> Chunks | None:
    """`budget` chunks spread over a long track, each decoded on its own by seeking.

    None where the track is short, cannot be cut (audio.seek_problem then says why), or every
    chosen chunk is silent: the streamed pass then decides. A silent chunk found here is
    dropped, not replaced. `total` is then the track's patch count as its declared duration
    gives it.
    """
    duration = audio.declared or 0.0
    total = (1 + int(duration * AUDIO.sample_rate) // HOP) // PATCH
    if total <= SPARSE_FROM * budget:
        return None
    patches, starts, silent = [], [], 0
    for done, index in enumerate(spread(total, budget), 1):
        patch = patch_at(audio, index)
        if patch is None:
            return None
        if is_silent(patch):
            silent += 1
        else:
            patches.append(patch)
            starts.append(index * AUDIO.patch_seconds)
        if on_progress:
            on_progress(done / budget)
    if not patches or not audio.ends_whole():
        return None
    return Chunks(
        patches=np.stack(patches),
        starts=np.array(starts),
        duration=duration,
        total=total - silent,
        silent=silent,
    )


def patch_at(audio: AudioFile, index: int) -> np.ndarray | None:
    """The log-mel patch `index` of the track (as the streamed pass computes it), by seeking."""
    first = index * PATCH * HOP - N_FFT // 2  # the first frame is centred on the patch start
    length = (PATCH - 1) * HOP + N_FFT
    start = max(first, 0)
    section = audio.section(start / AUDIO.sample_rate, (first + length - start) / AUDIO.sample_rate)
    if section is None:
        return None
    if section[0] != start:
        audio.seek_problem = "a chunk was cut at the wrong place"
        return None
    samples = section[1]
    if first + length - start - samples.size > N_FFT // 2:
        # The track ends before its declared duration: the streamed pass judges it.
        audio.seek_problem = "it ends before the duration its header declares"
        return None
    # Zeros before the track's start and after its end: librosa's centre padding.
    samples = np.concatenate(
        [
            np.zeros(start - first, np.float32),
            samples,
            np.zeros(max(0, length - (start - first) - samples.size), np.float32),
        ]
    )
    windows = sliding_window_view(samples, N_FFT)[::HOP][:PATCH]
    with one_blas_thread():
        return compress(mel_power(windows))


class _Collector:
    """Keeps the non-silent patches (as float16 mel power: half the memory, and exact once
    compressed) with their positions in the track; counts the silent ones."""

    def __init__(self) -> None:
        self.kept: list[np.ndarray] = []
        self.positions: list[int] = []
        self.silent = 0

    def take(self, patches: list[np.ndarray]) -> None:
        for patch in patches:
            position = len(self.kept) + self.silent
            if is_silent(compress(patch)):
                self.silent += 1
            else:
                self.kept.append(patch)
                self.positions.append(position)
