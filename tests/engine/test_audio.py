"""classifier.engine.audio: streaming PyAV decoding to mono 16 kHz, and its typed errors."""

from __future__ import annotations

import tracemalloc
import wave
from fractions import Fraction
from pathlib import Path

import av
import librosa
import numpy as np
import pytest

from classifier.engine import audio
from classifier.engine.audio import AudioInfo, decode, iter_decode, probe
from classifier.engine.errors import AudioError, EmptyAudioError, NotAudioError, TruncatedAudioError
from tests.audiofiles import FORMATS, make_audio_file, tone, write_audio

SR = 16_000


def sine(seconds: float, freq: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def amplitude_at(samples: np.ndarray, freq: float, sample_rate: int = SR) -> float:
    """Amplitude of the `freq` sinusoid in `samples` (by projection onto sin and cos)."""
    t = np.arange(samples.size) / sample_rate
    sin = 2 * np.mean(samples * np.sin(2 * np.pi * freq * t))
    cos = 2 * np.mean(samples * np.cos(2 * np.pi * freq * t))
    return float(np.hypot(sin, cos))


def peak_frequency(samples: np.ndarray, sample_rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * sample_rate / samples.size)


def write_stereo_wav(path: Path, left: np.ndarray, right: np.ndarray, sample_rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        frames = np.stack([left, right], axis=1) * 32767
        out.writeframes(frames.astype("<i2").tobytes())
    return path


# --- every format ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_decodes_to_mono_float32_at_16k(tmp_path, fmt):
    path = write_audio(tmp_path / f"a440{FORMATS[fmt][0]}", sine(3.0, 440.0, 22_050), 22_050, fmt)
    samples = decode(path)
    assert samples.dtype == np.float32 and samples.ndim == 1
    # Encoders add a little priming/padding (AAC ~40 ms); nothing else may change the length.
    assert abs(samples.size / SR - 3.0) < 0.1
    middle = samples[SR // 2 : SR // 2 + 2 * SR]
    assert abs(peak_frequency(middle) - 440.0) < 1.0
    # The level survives (Vorbis is written stereo: the mean of two equal channels is the
    # tone itself, where FFmpeg's own mono downmix would make it 1.41 times louder).
    assert amplitude_at(middle, 440.0) == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_probe_reports_the_stream(tmp_path, fmt):
    path = make_audio_file(tmp_path, fmt, seconds=3.0, sample_rate=22_050)
    expected = {
        "mp3": ("mp3", 22_050, 1, "mp3"),
        "flac": ("flac", 22_050, 1, "flac"),
        "ogg": ("vorbis", 22_050, 2, "ogg"),
        "opus": ("opus", 48_000, 1, "ogg"),
        "m4a": ("aac", 22_050, 1, "mp4"),
        "wav": ("pcm_s16le", 22_050, 1, "wav"),
        "aiff": ("pcm_s16be", 22_050, 1, "aiff"),
    }[fmt]
    info = probe(path)
    assert isinstance(info, AudioInfo)
    assert (info.codec, info.sample_rate, info.channels) == expected[:3]
    assert expected[3] in info.container.split(",")
    assert info.duration == pytest.approx(3.0, abs=0.1)


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path):
    left, right = sine(2.0, 440.0, 44_100, 0.6), sine(2.0, 660.0, 44_100, 0.3)
    samples = decode(write_stereo_wav(tmp_path / "stereo.wav", left, right, 44_100))
    assert samples.size == 2 * SR
    assert amplitude_at(samples, 440.0) == pytest.approx(0.3, rel=0.02)
    assert amplitude_at(samples, 660.0) == pytest.approx(0.15, rel=0.02)
    # Opposite channels cancel: the mean, not a sum of one channel's level.
    opposite = decode(write_stereo_wav(tmp_path / "opposite.wav", left, -left, 44_100))
    assert np.max(np.abs(opposite)) < 1e-3


def test_decode_equals_librosa_load(gtzan_dir):
    # The pretrained model was fed librosa.load(sr=16000): same resampler, same samples.
    path = gtzan_dir / "metal" / "metal.00002.flac"
    expected, _ = librosa.load(path, sr=SR)
    samples = decode(path)
    assert samples.shape == expected.shape
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-6)


def test_decode_at_another_rate(tmp_path):
    path = write_audio(tmp_path / "a.wav", sine(2.0, 1000.0, 44_100), 44_100, "wav")
    samples = decode(path, sample_rate=22_050)
    assert samples.size == 2 * 22_050
    assert abs(peak_frequency(samples, 22_050) - 1000.0) < 1.0


# --- streaming ------------------------------------------------------------------------


def write_long_stereo_wav(path: Path, minutes: int, sample_rate: int = 44_100) -> Path:
    """A long 16-bit stereo WAV, written ten seconds at a time."""
    step = 10 * sample_rate
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        for start in range(0, minutes * 60 * sample_rate, step):
            t = (start + np.arange(step)) / sample_rate
            block = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 550 * t)], 1)
            out.writeframes((0.3 * 32767 * block).astype("<i2").tobytes())
    return path


def test_streaming_decode_never_holds_the_whole_signal(tmp_path):
    path = write_long_stereo_wav(tmp_path / "long.wav", minutes=10)
    whole_bytes = 10 * 60 * SR * 4  # the decoded signal: 38.4 MB of float32
    total = largest = 0
    tracemalloc.start()
    try:
        for block in iter_decode(path):
            total += block.size
            largest = max(largest, block.size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 10 * 60 * SR
    assert largest * 4 < whole_bytes / 100
    assert peak < whole_bytes / 10, f"peak {peak / 1e6:.1f} MB while decoding"


def test_progress_rises_to_one(tmp_path):
    path = write_audio(tmp_path / "p.flac", tone(10.0, 22_050), 22_050, "flac")
    fractions: list[float] = []
    blocks = list(iter_decode(path, on_progress=fractions.append))
    assert sum(b.size for b in blocks) == 10 * SR
    assert len(fractions) >= 10
    assert all(0.0 < f <= 1.0 for f in fractions)
    assert all(a < b for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[-1] == 1.0


# --- errors ---------------------------------------------------------------------------


def assert_names_file(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert path.name in message
    assert str(path.parent) not in message  # the name, not the full path
    return message


def video_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            image = np.full((32, 32, 3), 40 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def not_audio_files(directory: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    text = directory / "notes.mp3"
    text.write_text("These are my notes, not a song.\n" * 40)
    noise = directory / "noise.wav"
    noise.write_bytes(rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    png = directory / "cover.mp3"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.bytes(2000))
    return [text, noise, png, video_only(directory / "clip.mp4")]


def test_files_that_are_not_audio(tmp_path):
    for path in not_audio_files(tmp_path):
        with pytest.raises(NotAudioError) as exc:
            decode(path)
        assert "not an audio file" in assert_names_file(exc, path)
        with pytest.raises(NotAudioError):
            probe(path)


def test_empty_files(tmp_path):
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(EmptyAudioError) as exc:
        decode(empty)
    assert "empty" in assert_names_file(exc, empty)
    no_samples = tmp_path / "no_samples.wav"
    with wave.open(str(no_samples), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(22_050)
    with pytest.raises(EmptyAudioError) as exc:
        decode(no_samples)
    assert "no audio" in assert_names_file(exc, no_samples)


def cut(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    target = path.with_name("cut_" + path.name)
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "aiff"])
def test_files_cut_half_way(tmp_path, fmt):
    path = cut(make_audio_file(tmp_path, fmt, seconds=6.0))
    with pytest.raises(TruncatedAudioError) as exc:
        decode(path)
    assert_names_file(exc, path)


def test_mp4_without_its_index_is_damaged_not_foreign(tmp_path):
    # An M4A written in one pass keeps its index (moov) at the end: half a file lacks it.
    path = cut(make_audio_file(tmp_path, "m4a", seconds=4.0))
    with pytest.raises(TruncatedAudioError) as exc:
        decode(path)
    assert "damaged" in assert_names_file(exc, path)


def vbr_mp3_without_xing(path: Path, sample_rate: int = 22_050) -> Path:
    """Quiet, then loud noise: FFmpeg guesses the length from the first frame's low bitrate."""
    rng = np.random.default_rng(3)
    quiet = sine(6.0, 440.0, sample_rate, 0.001)
    loud = (0.5 * rng.standard_normal(6 * sample_rate)).astype(np.float32)
    samples = np.clip(np.concatenate([quiet, loud]), -1, 1)
    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=sample_rate)
        stream.layout, stream.format = "mono", "fltp"
        stream.time_base = Fraction(1, sample_rate)
        stream.codec_context.qscale = 4
        stream.codec_context.flags |= av.codec.context.Flags.qscale
        size = stream.codec_context.frame_size or 1152  # known once the encoder is open
        for start in range(0, samples.size, size):
            frame = av.AudioFrame.from_ndarray(
                samples[None, start : start + size], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_a_guessed_duration_is_not_truncation(tmp_path):
    path = vbr_mp3_without_xing(tmp_path / "vbr.mp3")
    assert probe(path).duration > 20.0  # FFmpeg's bitrate guess, far from the real 12 s
    assert decode(path).size / SR == pytest.approx(12.0, abs=0.1)


def test_missing_file_and_folder(tmp_path):
    missing = tmp_path / "gone.mp3"
    with pytest.raises(AudioError, match="gone.mp3 does not exist"):
        decode(missing)
    with pytest.raises(AudioError, match="gone.mp3 does not exist"):
        probe(missing)
    with pytest.raises(AudioError, match="folder"):
        list(iter_decode(tmp_path))


# Encoder, container, sample format, layout: what each decodes to is read by Mixer directly
# (planar float under eight channels, packed float and integers) or through the converter.
MIXED = [
    ("libmp3lame", "mp3", "fltp", "stereo"),
    ("aac", "mp4", "fltp", "5.1"),
    ("libopus", "ogg", "flt", "mono"),
    ("flac", "flac", "s16", "stereo"),
    ("flac", "flac", "s32", "5.1"),
    ("pcm_f32le", "wav", "flt", "stereo"),
    ("pcm_s16le", "wav", "s16", "quad"),
    ("pcm_s32le", "wav", "s32", "mono"),
    ("pcm_u8", "wav", "u8", "stereo"),
]


def _encode_channels(path: Path, codec: str, container: str, fmt: str, layout: str) -> Path:
    rate = 48_000  # Opus's
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout, stream.format = layout, fmt
        stream.time_base = Fraction(1, rate)
        channels = stream.codec_context.layout.nb_channels
        size = stream.codec_context.frame_size or 1024
        signals = np.stack(
            [sine(1.0, 180.0 * (c + 1), rate, 0.1 + 0.1 * c) for c in range(channels)]
        )
        for start in range(0, signals.shape[1], size):
            block = signals[:, start : start + size].astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for converted in av.AudioResampler(format=fmt, layout=layout, rate=rate).resample(
                frame
            ):
                converted.pts = start
                for packet in stream.encode(converted):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.mark.parametrize(("codec", "container", "fmt", "layout"), MIXED)
def test_the_mixer_reads_frames_as_the_float_converter_would(
    tmp_path, codec, container, fmt, layout
):
    path = _encode_channels(tmp_path / f"mix.{container}", codec, container, fmt, layout)
    frames = 0
    with av.open(str(path)) as decoded:
        stream = decoded.streams.audio[0]
        for frame in decoded.decode(stream):
            mixer, converter = audio.Mixer(frame), audio.float_converter(frame)
            direct = np.concatenate(mixer.mix(frame) + mixer.flush())
            converted = [audio.channel_mean(c) for c in converter.resample(frame)]
            converted += [audio.channel_mean(c) for c in converter.resample(None)]
            assert direct.dtype == np.float32
            np.testing.assert_array_equal(direct, np.concatenate(converted))
            frames += 1
    assert frames > 10
    reads_directly = frame.format.name in ("fltp", *audio.PACKED)
    assert (mixer._to_float is None) == reads_directly  # u8 goes through the converter
