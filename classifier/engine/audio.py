"""Streaming audio decoding: any file FFmpeg reads -> mono float32 blocks at 16 kHz.

PyAV (FFmpeg's libraries inside the av wheel) demuxes and decodes; libsoxr (the `soxr`
package librosa itself depends on) changes the rate. The pretrained model was fed
librosa.load(sr=16000) audio, which is soxr "HQ": the same resampler here gives
bit-identical samples and log-mel patches. FFmpeg's own swresample (the wheel's FFmpeg has
no libsoxr) was off by up to 0.07 per sample and 1.06 in the patches (mean 0.003), and
no filter_size/cutoff setting brought it close.

Every failure leaves as an AudioError subclass naming the file, never as av.error.* or OSError.
A file whose audio decodes but that ends in data FFmpeg cannot decode (trailing zeros,
garbage after the last frame) is not refused: what decoded is used, with a warning.

Samples are read out of PyAV's frames by channel_mean(), never with AudioFrame.to_ndarray()
or AudioFrame.planes on a planar frame: PyAV (12 to 18.1 at least) counts a frame's planes
until it finds a NULL pointer, which runs past the end of FFmpeg's array of eight data
pointers for 8 channels (7.1 reports 9 planes) and past the end of extended_data above
that; to_ndarray() then reads the bogus plane and the process dies of a segmentation fault.
"""

from __future__ import annotations

import io
import math
import struct
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
import soxr

from .config import AUDIO
from .errors import (
    AudioError,
    EmptyAudioError,
    NotAudioError,
    TruncatedAudioError,
    UnsupportedAudioError,
)
from .tagbounds import check_tags, open_masked

# Blocks handed to the caller hold at least this many output samples (4 s at 16 kHz):
# big enough to keep per-block overhead low, small enough to be irrelevant in memory.
BLOCK_SAMPLES = 65_536
# librosa.load(sr=16000) resamples with soxr at this quality.
SOXR_QUALITY = "HQ"
# A file is "cut short" when it decodes to less than its header declares by more than
# this (seconds, fraction of the declared length); codec delay and padding stay far below.
SHORTFALL_SECONDS = 0.5
SHORTFALL_FRACTION = 0.01
# A declared duration this close to size*8/bitrate was guessed by FFmpeg from the bitrate
# (a VBR MP3 without a Xing header, raw AAC) and says nothing about truncation.
BITRATE_GUESS_TOLERANCE = 0.005
# FFmpeg counts the payload from the first audio frame: the ID3 tag and a Xing/Info frame
# (or a few junk bytes) before it shift its guess by up to this many bytes.
BITRATE_GUESS_SLACK_BYTES = 2048
# A file whose decoding fails part way is analysed as far as it decoded (the rest is junk
# after the audio) when that is all the audio its header declares, or, where the header
# declares no reliable length, at least this many seconds; otherwise it is damaged.
MIN_JUDGED_SECONDS = 1.0
# on_progress is called again once decoding has advanced by this fraction.
PROGRESS_STEP = 0.01

# Leading bytes of formats that are audio; a file that starts like one but cannot be opened
# is damaged rather than "not audio".
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"ID3", "MP3"),
    (0, b"fLaC", "FLAC"),
    (0, b"OggS", "Ogg"),
    (8, b"WAVE", "WAV"),
    (8, b"AIFF", "AIFF"),
    (8, b"AIFC", "AIFF"),
    (4, b"ftyp", "MP4/M4A"),
    (0, b"\x30\x26\xb2\x75", "WMA"),
    (0, b"MAC ", "APE"),
    (0, b"wvpk", "WavPack"),
)


@dataclass(frozen=True)
class AudioInfo:
    duration: float  # seconds, as the container declares it (0.0 when it does not say)
    codec: str  # FFmpeg's codec name: "mp3", "flac", "aac", "pcm_s16le", ...
    sample_rate: int
    channels: int
    container: str  # FFmpeg's demuxer name: "mp3", "wav", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", ...


def probe(path: str | Path) -> AudioInfo:
    """What the file says about its audio, without decoding it."""
    path = Path(path)
    with _open_audio(path) as (container, stream):
        return AudioInfo(
            duration=_declared_duration(container, stream) or 0.0,
            codec=stream.codec_context.codec.canonical_name,
            sample_rate=int(stream.rate),
            channels=int(stream.channels),
            container=container.format.name,
        )


def decode(path: str | Path, sample_rate: int = AUDIO.sample_rate) -> np.ndarray:
    """The whole file as one mono float32 array at `sample_rate` (for short files)."""
    blocks = list(iter_decode(path, sample_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def iter_decode(
    path: str | Path,
    sample_rate: int = AUDIO.sample_rate,
    on_progress: Callable[[float], None] | None = None,
    warnings: list[str] | None = None,
) -> Generator[np.ndarray, None, None]:
    """Decode `path` to mono float32 at `sample_rate`, block by block.

    Only a few blocks are ever in memory, so an hour-long file costs what a song does.
    Concatenated, the blocks equal librosa.load(path, sr=sample_rate) (mono = channel mean,
    soxr HQ, zero-padded to ceil(n * sr / native_sr) samples).
    on_progress(fraction) is called as decoding advances and with 1.0 at the end.
    Where decoding stops early on data that is not audio but what decoded is the whole
    track, the blocks end there and a sentence saying so is appended to `warnings`.
    Raises NotAudioError, EmptyAudioError, TruncatedAudioError, UnsupportedAudioError or
    AudioError.
    """
    path = Path(path)
    with _open_audio(path, warnings) as (container, stream):
        declared = _declared_duration(container, stream)
        _check_riff_data(path)
        progress = _Progress(on_progress, declared)
        mono = _MonoConverter(sample_rate)
        reader = _FrameReader(path, container, stream, mono)
        pending: list[np.ndarray] = []
        pending_size = 0
        for frame in reader:
            try:
                converted = mono.push(frame)
            except (av.error.FFmpegError, OSError) as exc:
                raise _decode_error(path, mono, exc) from exc
            for block in converted:
                pending.append(block)
                pending_size += block.size
            progress.update(mono.seconds_in)
            if pending_size >= BLOCK_SAMPLES:
                yield np.concatenate(pending)
                pending, pending_size = [], 0
        pending.extend(mono.finish())
        if mono.samples_out == 0:
            raise EmptyAudioError(f"{path.name} contains no audio samples")
        if reader.stopped is not None:
            note = _judge_early_end(path, declared, mono.seconds_in, stream, reader)
            if warnings is not None:
                warnings.append(note)
        else:
            _check_complete(path, declared, mono.seconds_in, stream)
        if pending:
            yield np.concatenate(pending)
        progress.done()


def check(path: str | Path) -> AudioInfo:
    """What the file holds, or the typed error of a file that does not decode as audio:
    probe it and decode its first block (what an upload is checked with)."""
    path = Path(path)
    info = probe(path)
    blocks = iter_decode(path)
    try:
        first = next(blocks, None)
    finally:
        blocks.close()
    if first is None or len(first) == 0:
        raise EmptyAudioError(f"{path.name} holds no audio samples")
    return info


# --- opening and error translation -------------------------------------------------------


@contextmanager
def _open_audio(
    path: Path, notes: list[str] | None = None
) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    """Open `path` and pick its audio stream, turning every failure into an AudioError.

    Tags past tagbounds' limits are hidden from FFmpeg (a note saying so goes to `notes`).
    """
    _check_file(path)
    source = _source(path, notes)
    try:
        # Tags are read elsewhere (filetags); text FFmpeg finds in a damaged header must
        # not stop decoding because it is not UTF-8.
        container = av.open(source, mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        if not isinstance(source, str):
            source.close()
        raise _open_error(path, exc) from exc
    try:
        stream = _audio_stream(path, container)
        yield container, stream
    finally:
        container.close()
        if not isinstance(source, str):
            source.close()


def _source(path: Path, notes: list[str] | None) -> str | io.RawIOBase:
    """What FFmpeg opens: the file's path, or a view of it without tags it must not parse."""
    tags = check_tags(path)
    if tags.ok:
        return str(path)
    if not tags.masked:  # nothing can hide them (an Ogg comment header, under checksums)
        raise UnsupportedAudioError(
            f"{path.name} cannot be analysed safely: {tags.problem}, and they cannot be "
            f"skipped in this format"
        )
    if notes is not None:
        notes.append(tags.note(path.name) + " Its audio was analysed.")
    return open_masked(path, tags)


def _check_file(path: Path) -> None:
    try:
        if not path.exists():
            raise AudioError(f"{path.name} does not exist")
        if path.is_dir():
            raise AudioError(f"{path.name} is a folder, not an audio file")
        if path.stat().st_size == 0:
            raise EmptyAudioError(f"{path.name} is empty (0 bytes)")
    except OSError as exc:
        raise AudioError(f"{path.name} cannot be read ({exc.strerror or exc})") from exc


def _open_error(path: Path, exc: BaseException) -> AudioError:
    if isinstance(exc, PermissionError):
        return AudioError(f"{path.name} cannot be read (permission denied)")
    kind = _looks_like(path)
    if kind is not None:
        return TruncatedAudioError(
            f"{path.name} is damaged: it looks like {kind} audio but cannot be read "
            f"(it may be incomplete; FFmpeg says: {_reason(exc)})"
        )
    return NotAudioError(
        f"{path.name} is not an audio file (its contents are not a format FFmpeg can play)"
    )


def _audio_stream(path: Path, container: av.container.InputContainer) -> av.AudioStream:
    # A stream FFmpeg has no decoder for (a WAV with format tag 0xFFFF, or 0 bits per
    # sample) comes without a codec context, and then without rate or channels.
    streams = list(container.streams.audio)
    audio = [s for s in streams if s.codec_context is not None and s.rate and s.channels]
    if not audio and streams:
        kind = _looks_like(path) or container.format.long_name or container.format.name
        raise UnsupportedAudioError(
            f"{path.name} cannot be decoded: it holds {kind} audio in an encoding FFmpeg has "
            f"no decoder for (or whose header is damaged)"
        )
    if not audio:
        kinds = sorted({s.type for s in container.streams})
        holding = f"with {' and '.join(kinds)} only" if kinds else "with no streams at all"
        described = container.format.long_name or container.format.name
        raise NotAudioError(
            f"{path.name} is not an audio file (it has no audio stream; "
            f"FFmpeg reads it as {described} {holding})"
        )
    best = container.streams.best("audio")
    return best if best in audio else audio[0]


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _looks_like(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError:
        return None
    for offset, magic, kind in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return kind
    return None


class _FrameReader:
    """The stream's decoded frames, packet by packet (what container.decode() does).

    A demuxing or decoding error before any audio makes the file NotAudio. After audio, it
    ends the frames: `stopped` keeps the error and `tail` the bytes from the first packet
    that failed (or after the last one read) to the end of the file, for iter_decode to
    judge (see _judge_early_end).
    """

    def __init__(
        self,
        path: Path,
        container: av.container.InputContainer,
        stream: av.AudioStream,
        mono: _MonoConverter,
    ) -> None:
        self.path, self.container, self.stream, self.mono = path, container, stream, mono
        self.stopped: BaseException | None = None
        self.tail: int | None = None
        self._position: int | None = None  # where the next packet starts, where known

    def __iter__(self) -> Iterator[av.AudioFrame]:
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except (av.error.FFmpegError, OSError) as exc:
                self._stop(exc, self._position)
                return
            start = packet.pos if packet.pos is not None and packet.pos >= 0 else None
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, OSError) as exc:
                self._stop(exc, start)
                return
            if start is not None:
                self._position = start + packet.size
            yield from frames

    def _stop(self, exc: BaseException, position: int | None) -> None:
        if self.mono.samples_in == 0:
            raise _decode_error(self.path, self.mono, exc) from exc
        self.stopped = exc
        try:
            self.tail = None if position is None else self.path.stat().st_size - position
        except OSError:
            self.tail = None


def _decode_error(path: Path, mono: _MonoConverter, exc: BaseException) -> AudioError:
    if mono.samples_in == 0:
        return NotAudioError(
            f"{path.name} is not a readable audio file (no audio could be decoded: {_reason(exc)})"
        )
    return TruncatedAudioError(
        f"{path.name} is damaged: decoding failed after {mono.seconds_in:.1f} s ({_reason(exc)})"
    )


def _judge_early_end(
    path: Path, declared: float | None, decoded: float, stream: av.AudioStream, reader: _FrameReader
) -> str:
    """The warning for decoding that stopped at data which is not audio, where what decoded
    is all there is to judge; TruncatedAudioError where it is not (damage part way)."""
    reason = _reason(reader.stopped) if reader.stopped is not None else "unknown error"
    if declared and not _guessed_from_bitrate(path, declared, stream):  # a reliable length
        if declared - decoded > max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * declared):
            raise TruncatedAudioError(
                f"{path.name} is damaged: decoding failed after {decoded:.1f} s of the "
                f"{declared:.1f} s its header declares ({reason})"
            )
    elif decoded < MIN_JUDGED_SECONDS:
        raise TruncatedAudioError(
            f"{path.name} is damaged: decoding failed after {decoded:.1f} s ({reason})"
        )
    what = (
        "data"
        if reader.tail is None or reader.tail <= 0
        else f"{reader.tail:,} byte{'s' if reader.tail != 1 else ''}"
    )
    return (
        f"The file ends with {what} that could not be decoded as audio (FFmpeg says: "
        f"{reason}); the {decoded:.1f} s of audio before it were analysed."
    )


# --- mono 16 kHz conversion ---------------------------------------------------------------

# The sample format frames are converted to before mixing: packed (interleaved) float32.
PACKED_FLOAT = "flt"


def float_converter(frame: av.AudioFrame) -> av.AudioResampler:
    """A converter of frames like `frame` to packed float32, keeping its channels and rate.

    FFmpeg's own downmix to mono sums stereo at -3 dB (0.707 * (L + R)), not the mean that
    librosa takes, so the resampler only converts the sample format; channel_mean() mixes.
    """
    return av.AudioResampler(format=PACKED_FLOAT, layout=frame.layout, rate=int(frame.sample_rate))


def channel_mean(frame: av.AudioFrame) -> np.ndarray:
    """The mean of a packed float32 frame's channels, float32 (librosa's to_mono).

    Reads the frame's one buffer with the frame's own channel and sample counts: never
    to_ndarray() or a planar frame's `planes` (see the module's docstring).
    """
    if frame.format.name != PACKED_FLOAT:
        raise AudioError(
            f"internal error: expected packed float32 samples, not {frame.format.name}"
        )
    channels = frame.layout.nb_channels
    count = frame.samples * channels
    if channels < 1 or count == 0:
        return np.zeros(0, np.float32)
    plane = frame.planes[0]  # a packed frame keeps every channel in its first buffer
    if plane.buffer_size < count * 4:
        raise AudioError(
            f"internal error: a frame of {frame.samples} samples of "
            f"{channels} channels holds only {plane.buffer_size} bytes"
        )
    interleaved = np.frombuffer(memoryview(plane), dtype=np.float32, count=count)
    # (channels, samples) in C order, then the mean over axis 0: the very reduction (and
    # rounding) of librosa.to_mono on the planar array it would have read.
    planar = np.ascontiguousarray(interleaved.reshape(frame.samples, channels).T)
    mean: np.ndarray = planar.mean(axis=0, dtype=np.float32)
    return mean


class _MonoConverter:
    """Packed float -> channel mean -> soxr, as librosa.load does."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.samples_in = 0
        self.seconds_in = 0.0
        self.samples_out = 0
        self._key: tuple[str, str, int] | None = None
        self._to_float: av.AudioResampler | None = None
        self._rate = 0
        self._segment_in = 0
        self._segment_out = 0
        self._resampler: soxr.ResampleStream | None = None

    def push(self, frame: av.AudioFrame) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        key = (frame.format.name, frame.layout.name, int(frame.sample_rate))
        if key != self._key:
            out.extend(self._end_segment())
            self._start_segment(frame, key)
        to_float = self._to_float
        assert to_float is not None  # _start_segment ran for this frame's segment
        for converted in to_float.resample(frame):
            out.extend(self._resample(channel_mean(converted)))
        self.samples_in += frame.samples
        self.seconds_in += frame.samples / frame.sample_rate
        return out

    def finish(self) -> list[np.ndarray]:
        return self._end_segment()

    def _start_segment(self, frame: av.AudioFrame, key: tuple[str, str, int]) -> None:
        self._key = key
        self._rate = int(frame.sample_rate)
        self._to_float = float_converter(frame)
        self._segment_in = self._segment_out = 0
        self._resampler = None
        if self._rate != self.sample_rate:
            self._resampler = soxr.ResampleStream(
                self._rate, self.sample_rate, 1, dtype="float32", quality=SOXR_QUALITY
            )

    def _resample(self, samples: np.ndarray, last: bool = False) -> list[np.ndarray]:
        self._segment_in += samples.size
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples, last=last)
        return self._emit(samples)

    def _emit(self, samples: np.ndarray) -> list[np.ndarray]:
        self._segment_out += samples.size
        self.samples_out += samples.size
        return [samples] if samples.size else []

    def _end_segment(self) -> list[np.ndarray]:
        if self._to_float is None:
            return []
        out: list[np.ndarray] = []
        for converted in self._to_float.resample(None):
            out.extend(self._resample(channel_mean(converted)))
        out.extend(self._resample(np.zeros(0, np.float32), last=True))
        # librosa.resample pads its output to ceil(n * sr / native_sr) samples.
        wanted = -(-self._segment_in * self.sample_rate // self._rate)
        if self._segment_in and wanted > self._segment_out:
            out.extend(self._emit(np.zeros(wanted - self._segment_out, np.float32)))
        self._to_float = None
        return out


# --- completeness checks ------------------------------------------------------------------


def _declared_duration(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _check_complete(
    path: Path, declared: float | None, decoded: float, stream: av.AudioStream
) -> None:
    if not declared or _guessed_from_bitrate(path, declared, stream):
        return
    if declared - decoded > max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * declared):
        raise TruncatedAudioError(
            f"{path.name} is cut short: its header declares {declared:.1f} s of audio but "
            f"only {decoded:.1f} s could be decoded (the file is probably incomplete)"
        )


def _guessed_from_bitrate(path: Path, declared: float, stream: av.AudioStream) -> bool:
    bit_rate = stream.codec_context.bit_rate or stream.bit_rate
    if not bit_rate:
        return False
    try:
        payload = path.stat().st_size - _id3v2_size(path)
    except OSError:
        return False
    guess = payload * 8 / bit_rate
    slack = BITRATE_GUESS_TOLERANCE * declared + BITRATE_GUESS_SLACK_BYTES * 8 / bit_rate
    return abs(guess - declared) <= slack


def _id3v2_size(path: Path) -> int:
    with path.open("rb") as handle:
        head = handle.read(10)
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _check_riff_data(path: Path) -> None:
    """A WAV whose data chunk is cut: FFmpeg silently shortens its duration to the file."""
    try:
        declared, present, byte_rate = _riff_data_sizes(path)
    except (OSError, struct.error, ValueError):
        return
    if not byte_rate or declared in (0, 0xFFFFFFFF) or present >= declared:
        return
    declared_s, present_s = declared / byte_rate, present / byte_rate
    if declared_s - present_s > max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * declared_s):
        raise TruncatedAudioError(
            f"{path.name} is cut short: its header declares {declared_s:.1f} s of audio but "
            f"the file holds only {present_s:.1f} s (the file is probably incomplete)"
        )


def _riff_data_sizes(path: Path) -> tuple[int, int, int]:
    """(declared data bytes, data bytes present, byte rate) of a RIFF/WAVE file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError("not RIFF/WAVE")
        byte_rate = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise ValueError("no data chunk")
            kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if kind == b"data":
                return length, size - handle.tell(), byte_rate
            if kind == b"fmt ":
                if length < 16:
                    raise ValueError("malformed fmt chunk")
                byte_rate = struct.unpack("<I", handle.read(16)[8:12])[0]
                length -= 16
            handle.seek(length + (length & 1), 1)  # chunks are padded to even sizes


class _Progress:
    """Calls on_progress with the fraction decoded, every PROGRESS_STEP and at the end."""

    def __init__(self, callback: Callable[[float], None] | None, declared: float | None) -> None:
        self._callback = callback
        self._declared = declared if declared and math.isfinite(declared) else None
        self._last = 0.0

    def update(self, seconds: float) -> None:
        if self._callback is None or self._declared is None:
            return
        fraction = min(seconds / self._declared, 1.0)
        if fraction - self._last >= PROGRESS_STEP and fraction < 1.0:
            self._last = fraction
            self._callback(fraction)

    def done(self) -> None:
        if self._callback is not None:
            self._callback(1.0)


# --- sections by seeking ------------------------------------------------------------------

# Resampling starts this long before a section and runs this long past it, so the filter's
# start-up and end fall outside the samples returned.
SECTION_MARGIN = 0.1


def decode_section(
    path: str | Path, start: float, seconds: float, sample_rate: int = AUDIO.sample_rate
) -> tuple[int, np.ndarray] | None:
    """Mono float32 samples of [start, start + seconds) at `sample_rate`, found by seeking.

    Returns (index of the first sample in the whole decoded track, samples), equal to that
    slice of iter_decode's output up to float rounding: resampling starts on an instant that
    lies on both the file's and the output's sample grid. None where the file cannot be cut
    exactly (no timestamps, or the seek landed after the section): decode it all instead.
    """
    path = Path(path)
    with _open_audio(path) as (container, stream):
        rate = int(stream.rate)
        grid = math.gcd(rate, sample_rate)
        first = max(0, math.floor((start - SECTION_MARGIN) * grid)) * (rate // grid)
        wanted = math.ceil((start + seconds + SECTION_MARGIN) * rate) - first
        try:
            container.seek(int(first / rate / _time_base(stream)), stream=stream, backward=True)
            native = _native_from(container, stream, first, wanted)
        except (av.error.FFmpegError, OSError):
            return None
    if native is None:
        return None
    out = (
        soxr.resample(native, rate, sample_rate, quality=SOXR_QUALITY)
        if rate != sample_rate
        else native
    )
    offset = first * sample_rate // rate
    lead = round(start * sample_rate) - offset
    return offset + lead, out[lead : lead + round(seconds * sample_rate)]


def _time_base(item: av.AudioStream | av.AudioFrame) -> Fraction:
    """`item.time_base`, which PyAV types as optional (None would fail the arithmetic too)."""
    if item.time_base is None:
        raise TypeError(f"{type(item).__name__} has no time_base")
    return item.time_base


def _native_from(
    container: av.container.InputContainer, stream: av.AudioStream, first: int, wanted: int
) -> np.ndarray | None:
    """`wanted` mono samples at the file's rate from sample index `first` (fewer at the end)."""
    to_float: av.AudioResampler | None = None
    parts: list[np.ndarray] = []
    have = 0
    position: int | None = None
    for frame in container.decode(stream):
        if position is None:
            if frame.pts is None:
                return None
            position = round(frame.pts * _time_base(frame) * frame.sample_rate)
            if position > first:
                return None
            to_float = float_converter(frame)
        assert to_float is not None  # made on the first frame, with `position`
        for converted in to_float.resample(frame):
            mono = channel_mean(converted)
            skip = max(0, first - position)
            position += mono.size
            if skip < mono.size:
                parts.append(mono[skip:])
                have += mono.size - skip
        if have >= wanted:
            break
    return np.concatenate(parts)[:wanted] if parts else None
