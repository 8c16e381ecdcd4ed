"""Real audio files of every supported format, encoded in the tests with PyAV.

Every test that needs a small audio file makes it here, so the formats and their
encoder settings are written down once.
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


def tone(seconds: float, sample_rate: int = 22_050, freqs: tuple[float, ...] = (220.0, 330.0),
         seed: int = 0) -> np.ndarray:
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
            block = data[start:start + frame_size]
            frame = _frame(block, sample_fmt, layout, channels, rate)
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def make_audio_file(directory: Path, fmt: str, seconds: float = 4.0, sample_rate: int = 22_050,
                    name: str = "tone", seed: int = 0) -> Path:
    suffix = FORMATS[fmt][0]
    return write_audio(directory / f"{name}{suffix}", tone(seconds, sample_rate, seed=seed),
                       sample_rate, fmt)


def _frame(block: np.ndarray, sample_fmt: str, layout: str, channels: int,
           rate: int) -> av.AudioFrame:
    planar = sample_fmt.endswith("p")
    stacked = np.tile(block, (channels, 1))
    if sample_fmt.startswith("s16"):
        stacked = (stacked * 32767).astype(np.int16)
    else:
        stacked = stacked.astype(np.float32)
    array = stacked if planar else stacked.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=sample_fmt,
                                       layout=layout)
    frame.sample_rate = rate
    return frame


def _resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    positions = np.arange(int(samples.size * dst / src)) * (src / dst)
    return np.interp(positions, np.arange(samples.size), samples).astype(np.float32)
