"""Real audio files of every supported format, encoded in the tests with PyAV.

Every test that needs a small audio file makes it here, so the formats and their
encoder settings are written down once; so are excerpts of the shared GTZAN clips.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# format name -> (file suffix, container format, codec, sample format, extra codec options)
FORMATS: dict[str, tuple[str, str, str, str, dict[str, str]]] = {
    "mp3": (".mp3", "mp3", "libmp3lame", "fltp", {}),
    "flac": (".flac", "flac", "flac", "s16", {}),
    "ogg": (".ogg", "ogg", "vorbis", "fltp", {"strict": "experimental"}),
    "opus": (".opus", "ogg", "libopus", "flt", {}),
    "m4a": (".m4a", "ipod", "aac", "fltp", {}),
    "wav": (".wav", "wav", "pcm_s16le", "s16", {}),
    "aiff": (".aiff", "aiff", "pcm_s16be", "s16", {}),
}
# FFmpeg's own Vorbis encoder only writes stereo; Opus only runs at 48 kHz.
_CHANNELS = {"ogg": 2}
_RATES = {"opus": 48_000}


def tone(
    seconds: float,
    sample_rate: int = 22_050,
    freqs: tuple[float, ...] = (220.0, 330.0),
    seed: int = 0,
) -> np.ndarray:
    """A mono float32 signal: a few sine partials plus a little noise, so it is not trivial."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    signal = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    signal = 0.5 * signal + 0.05 * rng.standard_normal(t.size)
    return signal.astype(np.float32)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, fmt: str) -> Path:
    """Encode mono float32 `samples` into `path` as format `fmt` (a key of FORMATS)."""
    _, container_format, codec, sample_fmt, options = FORMATS[fmt]
    rate = _RATES.get(fmt, sample_rate)
    if rate != sample_rate:
        samples = _resample(samples, sample_rate, rate)
    channels = _CHANNELS.get(fmt, 1)
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.layout = layout
        stream.format = sample_fmt
        stream.time_base = Fraction(1, rate)
        frame_size = stream.codec_context.frame_size or 1024
        data = np.clip(samples, -1.0, 1.0)
        for start in range(0, data.size, frame_size):
            block = data[start : start + frame_size]
            frame = _frame(block, sample_fmt, layout, channels, rate)
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_audio_file(
    directory: Path,
    fmt: str,
    seconds: float = 4.0,
    sample_rate: int = 22_050,
    name: str = "tone",
    seed: int = 0,
) -> Path:
    suffix = FORMATS[fmt][0]
    return write_audio(
        directory / f"{name}{suffix}", tone(seconds, sample_rate, seed=seed), sample_rate, fmt
    )


CLIP_SECONDS = 9.0  # three 3-second chunks: real music, analysed in about a second


def clip_excerpt(
    gtzan_dir: Path, folder: Path, genre: str, number: int, seconds: float = CLIP_SECONDS
) -> Path:
    """The first seconds of a GTZAN clip as FLAC in `folder` (../shared stays read-only)."""
    source = gtzan_dir / genre / f"{genre}.{number:05d}.flac"
    target = folder / source.name
    if not target.exists():
        samples, rate = read_mono(source, seconds)
        folder.mkdir(parents=True, exist_ok=True)
        write_audio(target, samples, rate, "flac")
    return target


def joined_clips(clips: list[Path], target: Path, fmt: str = "m4a") -> Path:
    """Real music as a video site would serve it: GTZAN clips one after another, re-encoded."""
    parts = [read_mono(clip) for clip in clips]
    rate = parts[0][1]
    return write_audio(target, np.concatenate([samples for samples, _ in parts]), rate, fmt)


def read_mono(path: Path, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """A whole file, or its first `seconds`, as mono float32 in -1..1, decoded with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        wanted = None if seconds is None else int(seconds * rate)
        blocks, decoded = [], 0
        for frame in container.decode(stream):
            data = frame.to_ndarray().astype(np.float32)
            if frame.format.name.startswith("s16"):  # GTZAN: 16-bit integers
                data /= 32768.0
            channels = len(frame.layout.channels)
            blocks.append(
                data.mean(0) if frame.format.is_planar else data.reshape(-1, channels).mean(1)
            )
            decoded += blocks[-1].size
            if wanted is not None and decoded >= wanted:
                break
    return np.concatenate(blocks)[:wanted], rate


def _frame(
    block: np.ndarray, sample_fmt: str, layout: str, channels: int, rate: int
) -> av.AudioFrame:
    planar = sample_fmt.endswith("p")
    stacked = np.tile(block, (channels, 1))
    if sample_fmt.startswith("s16"):
        stacked = (stacked * 32767).astype(np.int16)
    else:
        stacked = stacked.astype(np.float32)
    array = stacked if planar else stacked.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(array), format=sample_fmt, layout=layout
    )
    frame.sample_rate = rate
    return frame


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    positions = np.arange(int(samples.size * dst / src)) * (src / dst)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)
