"""Audio files of the kinds that broke the decoder: many channels, impossible WAV headers,
junk after the audio. Made at run time; the tests, the fuzzer's seeds and the web tests use
them.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr

from tests.audiofiles import tone, write_audio

REPO = Path(__file__).resolve().parents[2]
WAVE_FORMAT_PCM = 1
# The decoder as it was (PyAV's planar conversion and to_ndarray()), given a 7.1 file's
# path, dies of a segmentation fault. Run only in a child: as the upload check's stand-in
# (isolation.CHECK, so module-level) or by the other stand-ins below.


def pyav_plane_bug(path: str) -> None:
    import av

    container = av.open(path)
    for frame in container.decode(container.streams.audio[0]):
        to_planar = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
        for converted in to_planar.resample(frame):
            converted.to_ndarray()  # 9 planes for 8 channels: reads a bogus pointer


def hanging_check(path: str) -> None:
    time.sleep(60)


def exiting_check(path: str) -> None:
    raise SystemExit(3)


def channel_signals(channels: int, sample_rate: int, seconds: float = 2.0) -> np.ndarray:
    """(channels, samples) int16: each channel its own tone, so a wrong mix shows."""
    rows = [
        tone(seconds, sample_rate, freqs=(110.0 * (c + 1), 173.0 + 61.0 * c), seed=c)
        * (0.3 + 0.08 * c)
        for c in range(channels)
    ]
    return (np.clip(np.stack(rows), -1, 1) * 32767).astype(np.int16)


def expected_mono(signals: np.ndarray, sample_rate: int, target: int = 16_000) -> np.ndarray:
    """What the decoder must give for `signals`: the channel mean, resampled by soxr HQ
    and zero-padded to ceil(n * target / rate) samples, as librosa.load does."""
    mean = (signals.astype(np.float32) / 32768).mean(axis=0, dtype=np.float32)
    out = mean if sample_rate == target else soxr.resample(mean, sample_rate, target, "HQ")
    wanted = -(-mean.size * target // sample_rate)
    return np.concatenate([out, np.zeros(max(0, wanted - out.size), np.float32)])


def write_multichannel(path: Path, signals: np.ndarray, sample_rate: int) -> Path:
    """`signals` ((channels, samples) int16) as a 16-bit WAV or FLAC file, by `path`'s
    suffix (libsndfile: a WAV of more than two channels is WAVE_FORMAT_EXTENSIBLE without a
    channel mask, a FLAC of 8 channels is 7.1)."""
    soundfile.write(path, np.ascontiguousarray(signals.T), sample_rate, subtype="PCM_16")
    return path


def raw_wav(
    path: Path,
    signals: np.ndarray,
    sample_rate: int,
    *,
    format_tag: int = WAVE_FORMAT_PCM,
    bits: int = 16,
) -> Path:
    """A RIFF/WAVE file written byte by byte, its `fmt ` chunk saying what it is told to
    (a format tag of 0xFFFF, 0 bits per sample, ...) over 16-bit samples."""
    channels = signals.shape[0]
    data = np.ascontiguousarray(signals.T).astype("<i2").tobytes()
    block_align = channels * max(bits, 8) // 8
    fmt = struct.pack(
        "<HHIIHH", format_tag, channels, sample_rate, sample_rate * block_align, block_align, bits
    )
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def impossible_wavs(folder: Path) -> list[Path]:
    """WAVs FFmpeg opens but has no decoder for: 0 bits per sample, format tag 0xFFFF."""
    signals = channel_signals(1, 16_000, 2.0)
    return [
        raw_wav(folder / "zero_bits.wav", signals, 16_000, bits=0),
        raw_wav(folder / "tag_ffff.wav", signals, 16_000, format_tag=0xFFFF),
    ]


def with_tail(path: Path, tail: bytes, name: str) -> Path:
    """A copy of `path` named `name` (same suffix) with `tail` appended."""
    target = path.with_name(name + path.suffix)
    target.write_bytes(path.read_bytes() + tail)
    return target


def rate_change_mp3(folder: Path, seconds: tuple[float, float], rates: tuple[int, int]) -> Path:
    """Two MP3s of different sample rates, one after the other in one file (what joining
    MP3s by their bytes makes)."""
    parts = [
        write_audio(folder / f"part{i}.mp3", tone(s, rate, seed=i), rate, "mp3").read_bytes()
        for i, (s, rate) in enumerate(zip(seconds, rates, strict=True))
    ]
    joined = folder / "rate_change.mp3"
    joined.write_bytes(b"".join(parts))
    return joined


def garbage(size: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes()


def run_in_child(
    code: str, *args: str | Path, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`code` run by a fresh interpreter in the repository: a crash fails one test only."""
    result = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode < 0:
        pytest.fail(
            f"the child died of {signal.Signals(-result.returncode).name}:\n{result.stderr[-3000:]}"
        )
    return result


def assert_decodes_in_child(path: Path) -> None:
    """Fail the test, not the test run, where checking `path` kills the process: run before
    a test hands the file to code in its own process."""
    result = run_in_child(
        "import sys\nfrom classifier.engine.audio import check\ncheck(sys.argv[1])", path
    )
    assert result.returncode == 0, result.stderr[-3000:]
