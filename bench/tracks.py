"""4-minute benchmark tracks made of GTZAN clips, in the formats a library holds.

Each track is eight 30-second clips end to end (real music). FLAC keeps the clips' own 22,050
Hz mono; the lossy formats are encoded as a library's files are: 44.1 kHz stereo (Opus: 48
kHz), MP3 at 192 kbps, AAC at 192 kbps in M4A, Vorbis at its default quality, Opus at 128 kbps.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile
import soxr

REPO = Path(__file__).resolve().parent.parent
GTZAN = Path(os.environ.get("GENREWEB_SHARED_DIR", REPO.parent / "shared")) / "data/gtzan_mini"

FORMATS = {
    "flac": "FLAC",
    "mp3": "MP3 192 kbps",
    "m4a": "M4A (AAC)",
    "ogg": "Ogg Vorbis",
    "opus": "Opus",
}
# suffix -> (container, codec, sample format, rate, bit rate, codec options)
_LOSSY = {
    "mp3": ("mp3", "libmp3lame", "fltp", 44_100, 192_000, {}),
    "m4a": ("ipod", "aac", "fltp", 44_100, 192_000, {}),
    "ogg": ("ogg", "vorbis", "fltp", 44_100, 0, {"strict": "experimental"}),
    "opus": ("ogg", "libopus", "flt", 48_000, 128_000, {}),
}


def clip_audio(count: int) -> list[np.ndarray]:
    """`count` tracks' samples (mono float32, 22,050 Hz), the same for the same count."""
    clips = sorted(GTZAN.glob("*/*.flac"))
    rng = np.random.default_rng(0)
    tracks = []
    for _ in range(count):
        chosen = rng.choice(len(clips), size=8, replace=False)
        tracks.append(
            np.concatenate([soundfile.read(clips[i], dtype="float32")[0] for i in chosen])
        )
    return tracks


def make_tracks(folder: Path, count: int, fmt: str = "flac") -> list[Path]:
    """`count` 4-minute tracks in `folder` as format `fmt` (a key of FORMATS)."""
    paths = []
    for n, audio in enumerate(clip_audio(count)):
        path = folder / f"track{n}.{fmt}"
        if fmt == "flac":
            soundfile.write(path, audio, 22_050)
        else:
            encode(path, audio, fmt)
        paths.append(path)
    return paths


def encode(path: Path, audio: np.ndarray, fmt: str) -> None:
    container, codec, sample_fmt, rate, bit_rate, options = _LOSSY[fmt]
    samples = soxr.resample(audio, 22_050, rate).astype(np.float32)
    stereo = np.clip(np.stack([samples, samples]), -1.0, 1.0)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, options=options)
        stream.layout = "stereo"
        stream.format = sample_fmt
        stream.time_base = Fraction(1, rate)
        if bit_rate:
            stream.bit_rate = bit_rate
        size = stream.codec_context.frame_size or 1024
        for start in range(0, stereo.shape[1], size):
            block = np.ascontiguousarray(stereo[:, start : start + size])
            if not sample_fmt.endswith("p"):
                block = np.ascontiguousarray(block.T.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(block, format=sample_fmt, layout="stereo")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
