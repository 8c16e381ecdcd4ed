"""classifier.engine.features: the musicnn log-mel recipe, streamed, and the chunk selection."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from classifier.engine import features
from classifier.engine.audio import decode, iter_decode
from classifier.engine.config import AUDIO, DEFAULT_CHUNK_BUDGET
from classifier.engine.errors import EmptyAudioError
from classifier.engine.features import (
    Chunks,
    extract_chunks,
    is_silent,
    iter_log_mel,
    log_mel,
    spread,
)
from tests.audiofiles import tone, write_audio

SR = AUDIO.sample_rate
PATCH_SECONDS = AUDIO.patch_seconds
REFERENCE_CLIPS = ["blues/blues.00000", "classical/classical.00001", "metal/metal.00002"]
# Observed: our patches equal the reference bit for bit (max abs error 0.0). The tolerance
# leaves room for a float16 rounding flip (<= 3e-4 in log10) under another BLAS build;
# a wrong resampler (FFmpeg's swresample) is off by up to 1.06, reflect padding by 1.6.
REFERENCE_TOLERANCE = 1e-3


def assert_equal_but_float16_flips(actual: np.ndarray, expected: np.ndarray) -> None:
    """Equal log-mel frames, but for rare one-step flips of the float16 mel power.

    The mel power is cast to float16 (as musicnn's recipe does); where BLAS blocks a batch
    of frames differently (it does on some processors with another row count), a value on
    a float16 rounding boundary can land one step over: at most ~5e-4 after the log, in a
    handful of the values. Anything else is a real difference.
    """
    diff = np.abs(np.asarray(actual, np.float64) - np.asarray(expected, np.float64))
    assert diff.max() < 1e-3, diff.max()
    assert np.count_nonzero(diff > 1e-5) <= max(1, diff.size // 10_000)


def librosa_recipe(samples: np.ndarray) -> np.ndarray:
    """musicnn's own extractor, on librosa."""
    power = librosa.feature.melspectrogram(
        y=samples,
        sr=SR,
        n_fft=AUDIO.n_fft,
        hop_length=AUDIO.hop_length,
        n_mels=AUDIO.n_mels,
        pad_mode="constant",
    ).T
    return np.log10(10000 * power.astype(np.float16).astype(np.float32) + 1)


def test_log_mel_matches_the_librosa_recipe():
    samples = tone(5.0, SR, freqs=(110.0, 440.0, 3000.0))
    ours = log_mel(samples)
    assert ours.dtype == np.float32
    assert ours.shape == (1 + samples.size // AUDIO.hop_length, AUDIO.n_mels)
    np.testing.assert_allclose(ours, librosa_recipe(samples), rtol=0, atol=1e-3)


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")  # librosa, on tiny signals
@pytest.mark.parametrize("size", [1, 255, 256, 257, 511, 512, 513, 4000])
def test_log_mel_frame_count_is_librosas(size):
    samples = np.random.default_rng(size).standard_normal(size).astype(np.float32) * 0.1
    assert log_mel(samples).shape == (1 + size // AUDIO.hop_length, AUDIO.n_mels)
    np.testing.assert_allclose(log_mel(samples), librosa_recipe(samples), rtol=0, atol=1e-3)


def test_streaming_log_mel_equals_whole_signal():
    samples = tone(20.0, SR, freqs=(220.0, 330.0, 2500.0), seed=4)
    whole = log_mel(samples)
    rng = np.random.default_rng(0)
    # Irregular blocks: empty, single samples, less than a hop, more than a window, large.
    sizes = [0, 1, 1, 100, 255, 257, 511, 513, 0, 5000, 70_000]
    cuts = np.cumsum(sizes + list(rng.integers(1, 3000, 200)))
    blocks = np.split(samples, cuts[cuts < samples.size])
    streamed = np.concatenate(list(iter_log_mel(blocks)))
    assert streamed.shape == whole.shape
    assert_equal_but_float16_flips(streamed, whole)


def test_streaming_log_mel_of_a_decoded_file(tmp_path):
    path = write_audio(tmp_path / "t.flac", tone(9.0, 22_050, seed=2), 22_050, "flac")
    streamed = np.concatenate(list(iter_log_mel(iter_decode(path))))
    assert_equal_but_float16_flips(streamed, log_mel(decode(path)))


@pytest.mark.parametrize("clip", REFERENCE_CLIPS)
def test_patches_match_the_musicnn_reference(gtzan_dir, reference_dir, clip):
    reference = np.load(reference_dir / f"{clip.split('/')[1]}.npz")["patches"]
    chunks = extract_chunks(gtzan_dir / f"{clip}.flac", budget=None)
    assert chunks.patches.shape == reference.shape
    error = np.abs(chunks.patches - reference)
    assert error.max() <= REFERENCE_TOLERANCE, f"max abs error {error.max():.2e}"
    np.testing.assert_allclose(chunks.starts, np.arange(len(reference)) * PATCH_SECONDS)
    assert (chunks.total, chunks.silent) == (len(reference), 0)


def test_silent_chunks_are_dropped(tmp_path):
    # 7.5 s of digital silence, then 4.5 s of tone: 4 patches, the first two all zeros.
    samples = np.concatenate([np.zeros(int(7.5 * SR), np.float32), tone(4.5, SR)])
    chunks = extract_chunks(write_audio(tmp_path / "half.flac", samples, SR, "flac"))
    assert (chunks.total, chunks.silent) == (2, 2)
    np.testing.assert_allclose(chunks.starts, [2 * PATCH_SECONDS, 3 * PATCH_SECONDS])
    assert not any(is_silent(patch) for patch in chunks.patches)
    assert chunks.duration == pytest.approx(12.0)


def test_is_silent_only_for_digital_silence():
    assert is_silent(np.zeros((AUDIO.patch_frames, AUDIO.n_mels), np.float32))
    lsb = np.random.default_rng(1).integers(-1, 2, 3 * SR) / 32768  # 16-bit dither
    assert is_silent(log_mel(lsb.astype(np.float32)))
    quiet = tone(3.0, SR) * 10 ** (-70 / 20)  # quiet music is music
    assert not is_silent(log_mel(quiet))


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory):
    directory = tmp_path_factory.mktemp("long")
    return write_audio(directory / "two_minutes.flac", tone(120.0, SR, seed=5), SR, "flac")


def test_budget_spreads_chunks_over_the_track(two_minutes):
    chunks = extract_chunks(two_minutes)
    total = (1 + 120 * SR // AUDIO.hop_length) // AUDIO.patch_frames  # 40
    assert isinstance(chunks, Chunks)
    assert chunks.patches.shape == (DEFAULT_CHUNK_BUDGET, AUDIO.patch_frames, AUDIO.n_mels)
    assert chunks.patches.dtype == np.float32
    assert (chunks.total, chunks.silent) == (total, 0)
    expected = np.array(spread(total, DEFAULT_CHUNK_BUDGET)) * PATCH_SECONDS
    np.testing.assert_allclose(chunks.starts, expected)
    assert chunks.starts[0] == 0.0 and chunks.starts[-1] == (total - 1) * PATCH_SECONDS
    gaps = np.round(np.diff(chunks.starts) / PATCH_SECONDS)
    assert gaps.max() - gaps.min() <= 1  # even: every gap 2 or 3 patches


def test_no_budget_keeps_every_chunk(two_minutes):
    chunks = extract_chunks(two_minutes, budget=None)
    assert chunks.patches.shape[0] == chunks.total == 40
    whole = log_mel(decode(two_minutes))
    patches = whole[: 40 * AUDIO.patch_frames].reshape(40, AUDIO.patch_frames, AUDIO.n_mels)
    assert_equal_but_float16_flips(chunks.patches, patches)
    np.testing.assert_allclose(chunks.starts, np.arange(40) * PATCH_SECONDS)
    progress: list[float] = []
    assert extract_chunks(two_minutes, budget=4, on_progress=progress.append).total == 40
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_a_short_track_is_repeat_padded_to_one_chunk(tmp_path):
    path = write_audio(tmp_path / "short.wav", tone(1.5, SR), SR, "wav")
    chunks = extract_chunks(path)
    frames = 1 + int(1.5 * SR) // AUDIO.hop_length  # 94
    assert chunks.patches.shape == (1, AUDIO.patch_frames, AUDIO.n_mels)
    assert (chunks.total, chunks.silent) == (1, 0)
    patch = chunks.patches[0]
    np.testing.assert_array_equal(patch[:frames], log_mel(decode(path)))
    np.testing.assert_array_equal(patch[frames:], patch[: AUDIO.patch_frames - frames])


def test_an_all_silent_file_is_empty(tmp_path):
    path = write_audio(tmp_path / "hush.flac", np.zeros(5 * SR, np.float32), SR, "flac")
    with pytest.raises(EmptyAudioError, match="hush.flac contains only silence"):
        extract_chunks(path)


def test_spread():
    assert spread(5, 16) == [0, 1, 2, 3, 4]
    assert spread(16, 16) == list(range(16))
    assert spread(40, 2) == [0, 39]
    assert spread(9, 1) == [4]
    picked = spread(1000, 16)
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 999
    gaps = np.diff(picked)
    assert gaps.min() > 0 and gaps.max() - gaps.min() <= 1
    assert spread(1000, 16) == picked  # deterministic


def test_the_filterbank_and_window_are_librosas():
    """Computed without librosa (whose filters import scipy.signal and numba), bit for bit."""
    expected = librosa.filters.mel(sr=SR, n_fft=AUDIO.n_fft, n_mels=AUDIO.n_mels)
    assert features.mel_basis().dtype == expected.dtype
    np.testing.assert_array_equal(features.mel_basis(), expected)
    window = librosa.filters.get_window("hann", AUDIO.n_fft, fftbins=True)
    np.testing.assert_array_equal(features._window(), window)
