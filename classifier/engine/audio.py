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

Samples are read out of PyAV's frames by channel_mean() or planar_mean() (see Mixer), never
with AudioFrame.to_ndarray(), nor with AudioFrame.planes on a planar frame of 8 channels or
more: PyAV (12 to 18.1 at least) counts a frame's planes until it finds a NULL pointer,
which runs past the end of FFmpeg's array of eight data pointers for 8 channels (7.1
reports 9 planes) and past the end of extended_data above that; to_ndarray() then reads the
bogus plane and the process dies of a segmentation fault.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

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
    with open_audio(Path(path)) as audio:
        return audio.info


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
    """Decode `path` to mono float32 at `sample_rate`, block by block (see AudioFile.blocks)."""
    with open_audio(Path(path), warnings) as audio:
        yield from audio.blocks(sample_rate, on_progress, warnings)


def check(path: str | Path) -> AudioInfo:
    """What the file holds, or the typed error of a file that does not decode as audio:
    probe it and decode its first block (what an upload is checked with), in one open."""
    with open_audio(Path(path)) as audio:
        return check_open(audio)


def check_open(audio: AudioFile) -> AudioInfo:
    """check() of a file already open (nothing decoded from it yet)."""
    blocks = audio.blocks()
    try:
        first = next(blocks, None)
    finally:
        blocks.close()
    if first is None or len(first) == 0:
        raise EmptyAudioError(f"{audio.path.name} holds no audio samples")
    return audio.info


# --- the one open file ---------------------------------------------------------------------


@contextmanager
def open_audio(path: Path, notes: list[str] | None = None) -> Iterator[AudioFile]:
    """`path` opened once for everything read from it (see AudioFile); closed on leaving."""
    audio = AudioFile.open(path, notes)
    try:
        yield audio
    finally:
        audio.close()


class AudioFile:
    """An audio file opened once: its handle, the container FFmpeg reads and its audio stream.

    The tag-bounds check, the RIFF and ID3 size checks, probing, streamed decoding and every
    seek read this one handle (FFmpeg through it, the checks with pread, which leaves its
    position alone), so a track is opened once however many of its sections are decoded.
    """

    def __init__(
        self,
        path: Path,
        handle: BinaryIO,
        source: BinaryIO | io.RawIOBase,
        container: av.container.InputContainer,
        stream: av.AudioStream,
    ) -> None:
        self.path, self.container, self.stream = path, container, stream
        self._handle, self._source = handle, source
        self.declared = _declared_duration(container, stream)
        self.seek_problem: str | None = None  # why the last section could not be cut
        self._origin: int | None = None  # see _origin_samples
        self._fresh = True  # nothing decoded or sought yet: blocks() starts at the start

    @classmethod
    def open(cls, path: Path, notes: list[str] | None = None) -> AudioFile:
        """Open `path` and pick its audio stream, turning every failure into an AudioError.

        Tags past tagbounds' limits are hidden from FFmpeg (a note saying so goes to `notes`).
        """
        _check_file(path)
        handle = _open_handle(path)
        try:
            source = _source(path, handle, notes)
            container = _open_container(path, handle, source)
            try:
                return cls(path, handle, source, container, _audio_stream(path, container))
            except BaseException:
                container.close()
                raise
        except BaseException:
            handle.close()
            raise

    def close(self) -> None:
        self.container.close()
        self._source.close()
        self._handle.close()

    @property
    def info(self) -> AudioInfo:
        return AudioInfo(
            duration=self.declared or 0.0,
            codec=self.stream.codec_context.codec.canonical_name,
            sample_rate=int(self.stream.rate),
            channels=int(self.stream.channels),
            container=self.container.format.name,
        )

    @property
    def fresh(self) -> bool:
        """Nothing decoded or sought yet: blocks() may stream it from its start."""
        return self._fresh

    @property
    def size(self) -> int:
        return os.fstat(self._handle.fileno()).st_size

    @property
    def handle(self) -> BinaryIO:
        """The open file, for a reader sharing the one open (the tag reader): it must leave
        the position as it found it, since FFmpeg may read on from there."""
        return self._handle

    def read_at(self, offset: int, count: int) -> bytes:
        """`count` bytes from `offset`, without moving the position FFmpeg reads from."""
        return os.pread(self._handle.fileno(), count, offset)

    def blocks(
        self,
        sample_rate: int = AUDIO.sample_rate,
        on_progress: Callable[[float], None] | None = None,
        warnings: list[str] | None = None,
    ) -> Generator[np.ndarray, None, None]:
        """Decode the file to mono float32 at `sample_rate`, block by block, from its start.

        Only a few blocks are ever in memory, so an hour-long file costs what a song does.
        Concatenated, the blocks equal librosa.load(path, sr=sample_rate) (mono = channel
        mean, soxr HQ, zero-padded to ceil(n * sr / native_sr) samples).
        on_progress(fraction) is called as decoding advances and with 1.0 at the end.
        Where decoding stops early on data that is not audio but what decoded is the whole
        track, the blocks end there and a sentence saying so is appended to `warnings`.
        Raises NotAudioError, EmptyAudioError, TruncatedAudioError, UnsupportedAudioError
        or AudioError.
        """
        if not self._fresh:
            raise AudioError(f"internal error: {self.path.name} was decoded before streaming")
        self._fresh = False
        path, stream = self.path, self.stream
        _check_riff_data(self)
        progress = _Progress(on_progress, self.declared)
        mono = _MonoConverter(sample_rate)
        reader = _FrameReader(self, mono)
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
            note = _judge_early_end(self, mono.seconds_in, reader)
            if warnings is not None:
                warnings.append(note)
        else:
            _check_complete(self, mono.seconds_in, stream)
        if pending:
            yield np.concatenate(pending)
        progress.done()

    def section(
        self, start: float, seconds: float, sample_rate: int = AUDIO.sample_rate
    ) -> tuple[int, np.ndarray] | None:
        """See decode_section; None (with seek_problem saying why) where it cannot be cut."""
        self._fresh = False
        rate = int(self.stream.rate)
        grid = math.gcd(rate, sample_rate)
        first = max(0, math.floor((start - SECTION_MARGIN) * grid)) * (rate // grid)
        wanted = math.ceil((start + seconds + SECTION_MARGIN) * rate) - first
        try:
            native = self._native_section(first, wanted)
        except (av.error.FFmpegError, OSError) as exc:
            native, self.seek_problem = None, f"seeking failed ({_reason(exc)})"
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

    def ends_whole(self) -> bool:
        """Whether the file's audio runs to the end its header declares and nothing follows
        that fails to decode: what the streamed pass checks at its end (a file cut short, junk
        after the audio), checked here by decoding only its last second. False (seek_problem
        says why) sends the track to the streamed pass, which judges and reports it.
        Raises TruncatedAudioError for a WAV whose data chunk is cut, as blocks() does.
        """
        _check_riff_data(self)
        declared = self.declared or 0.0
        rate = int(self.stream.rate)
        first = max(0, math.floor((declared - END_CHECK_SECONDS) * rate))
        try:
            end = self._end_from(first)
        except (av.error.FFmpegError, OSError) as exc:
            self.seek_problem = f"its end does not decode ({_reason(exc)})"
            return False
        if end is None:
            return False
        short = declared - end / rate > max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * declared)
        if short and not _guessed_from_bitrate(self, declared):  # a guess proves nothing
            self.seek_problem = "its audio ends before the duration its header declares"
            return False
        return True

    def _end_from(self, first: int) -> int | None:
        """Where (samples of the streamed decode) decoding from sample `first` ends."""
        origin = self._seek(first)
        if origin is None:
            return None
        end: int | None = None
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                if end is not None and end >= first:
                    raise  # past the pre-roll: damage, or junk after the audio
                continue
            for frame in frames:
                if frame.pts is not None:
                    stamp = round(frame.pts * _time_base(frame) * frame.sample_rate)
                    end = stamp - origin + frame.samples
                elif end is not None:
                    end += frame.samples
        if end is None:
            self.seek_problem = "nothing decoded at its end"
        return end

    def _seek(self, first: int) -> int | None:
        """Seek to where decoding sample `first` of the streamed decode starts (its pre-roll
        before it); the origin of the frames' timestamps, None where there is none."""
        exact = self.seeks_exactly
        origin = 0 if exact else self._origin_samples()
        if origin is None:
            return None
        rate = int(self.stream.rate)
        target = max(0, first - (0 if exact else round(PREROLL_SECONDS * rate))) + origin
        self.container.seek(
            int(target / rate / _time_base(self.stream)), stream=self.stream, backward=True
        )
        return origin

    @property
    def seeks_exactly(self) -> bool:
        """Whether FFmpeg seeks this codec to the exact sample (FLAC, PCM, ...)."""
        return self.stream.codec_context.codec.canonical_name.startswith(EXACT_SEEK_CODECS)

    def _native_section(self, first: int, wanted: int) -> np.ndarray | None:
        """`wanted` mono samples at the file's rate from sample `first` of the streamed decode.

        A codec that does not seek exactly (MP3, AAC, Vorbis) is sought PREROLL_SECONDS
        earlier and decoded from there: the frames before `first` settle its state (MP3's
        bit reservoir, the overlap of the transform) and are dropped; a frame that fails to
        decode there is part of that settling. Positions count from the first frame the
        streamed decode yields (`_origin_samples`: encoder delay and priming).
        """
        exact = self.seeks_exactly
        rate = int(self.stream.rate)
        preroll = 0 if exact else round(PREROLL_SECONDS * rate)
        if not exact and self._origin is None and first <= preroll:
            # The track's start, before anything was read: decoded as the streamed pass
            # decodes it (a seek to the start would not skip the encoder delay again).
            return self._samples_from(first, wanted, None, tolerant=True)
        origin = self._seek(first)
        if origin is None:
            return None
        return self._samples_from(first, wanted, origin, tolerant=not exact)

    def _origin_samples(self) -> int | None:
        """Where, in the stream's timestamps (as samples), the streamed decode's first sample
        lies: the first decoded frame's timestamp, read before anything is sought."""
        if self._origin is None:
            rate = int(self.stream.rate)
            for frame in self._frames(tolerant=True):
                if frame.pts is not None:
                    self._origin = round(frame.pts * _time_base(frame) * rate)
                    break
            else:
                self.seek_problem = "its frames carry no timestamps"
                return None
        return self._origin

    def _frames(self, tolerant: bool) -> Iterator[av.AudioFrame]:
        """The stream's frames from where it stands; `tolerant`: skip packets that fail."""
        for packet in self.container.demux(self.stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                if not tolerant:
                    raise

    def _samples_from(
        self, first: int, wanted: int, origin: int | None, tolerant: bool
    ) -> np.ndarray | None:
        """`wanted` mono samples from `first`, the frames' timestamps less `origin` placing
        them (None: the first frame is the track's first sample, and sets the origin)."""
        mixer: Mixer | None = None
        parts: list[np.ndarray] = []
        have = 0
        position: int | None = None
        rate = int(self.stream.rate)
        expected: tuple[str, str, int] | None = None
        for frame in self._frames(tolerant):
            key = frame_key(frame)
            if key[2] != rate or expected not in (None, key):
                # One section is resampled at one rate (and a converter takes one layout);
                # the streamed pass starts a new segment at such a change instead.
                self.seek_problem = "its sample rate or channels change within the stream"
                return None
            if position is None:
                expected = key
                if frame.pts is None:
                    if tolerant:
                        continue  # an Ogg page's first packets after a seek: pre-roll
                    self.seek_problem = "its frames carry no timestamps"
                    return None
                stamp = round(frame.pts * _time_base(frame) * frame.sample_rate)
                if origin is None:
                    origin = self._origin = stamp
                position = stamp - origin
                if position > first:
                    self.seek_problem = "a seek landed after the chunk it was meant for"
                    return None
                mixer = Mixer(frame)
            assert mixer is not None  # made on the first frame, with `position`
            for mono in mixer.mix(frame):
                skip = max(0, first - position)
                position += mono.size
                if skip < mono.size:
                    parts.append(mono[skip:])
                    have += mono.size - skip
            if have >= wanted:
                break
        if not parts:
            self.seek_problem = "nothing decoded where a chunk was expected"
        return np.concatenate(parts)[:wanted] if parts else None


def _open_handle(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise AudioError(f"{path.name} cannot be read (permission denied)") from exc
        raise AudioError(f"{path.name} cannot be read ({exc.strerror or exc})") from exc


def _open_container(
    path: Path, handle: BinaryIO, source: BinaryIO | io.RawIOBase
) -> av.container.InputContainer:
    try:
        # Tags are read elsewhere (filetags); text FFmpeg finds in a damaged header must
        # not stop decoding because it is not UTF-8.
        return av.open(source, mode="r", metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        error = _open_error(path, handle, exc)
        source.close()
        raise error from exc


def _source(path: Path, handle: BinaryIO, notes: list[str] | None) -> BinaryIO | io.RawIOBase:
    """What FFmpeg reads: the file's handle, or a view of it without tags it must not parse."""
    tags = check_tags(path, handle)
    handle.seek(0)
    if tags.ok:
        return handle
    if not tags.masked:  # nothing can hide them (an Ogg comment header, under checksums)
        raise UnsupportedAudioError(
            f"{path.name} cannot be analysed safely: {tags.problem}, and they cannot be "
            f"skipped in this format"
        )
    if notes is not None:
        notes.append(tags.note(path.name) + " Its audio was analysed.")
    return open_masked(path, tags, handle)


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


def _open_error(path: Path, handle: BinaryIO, exc: BaseException) -> AudioError:
    if isinstance(exc, PermissionError):
        return AudioError(f"{path.name} cannot be read (permission denied)")
    kind = _looks_like(handle)
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


def _looks_like(source: Path | BinaryIO) -> str | None:
    try:
        if isinstance(source, Path):
            with source.open("rb") as handle:
                head = handle.read(16)
        else:
            head = os.pread(source.fileno(), 16, 0)
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

    def __init__(self, audio: AudioFile, mono: _MonoConverter) -> None:
        self.audio, self.mono = audio, mono
        self.path, self.container, self.stream = audio.path, audio.container, audio.stream
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
            self.tail = None if position is None else self.audio.size - position
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


def _judge_early_end(audio: AudioFile, decoded: float, reader: _FrameReader) -> str:
    """The warning for decoding that stopped at data which is not audio, where what decoded
    is all there is to judge; TruncatedAudioError where it is not (damage part way)."""
    path, declared = audio.path, audio.declared
    reason = _reason(reader.stopped) if reader.stopped is not None else "unknown error"
    if declared and not _guessed_from_bitrate(audio, declared):  # a reliable length
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
# Packed formats channel_mean() reads as they are: dtype, and the scale to float (None: none).
PACKED: dict[str, tuple[type[np.generic], np.float32 | None]] = {
    PACKED_FLOAT: (np.float32, None),
    "s16": (np.int16, np.float32(2.0**-15)),
    "s32": (np.int32, np.float32(2.0**-31)),
}


def float_converter(frame: av.AudioFrame) -> av.AudioResampler:
    """A converter of frames like `frame` to packed float32, keeping its channels and rate.

    FFmpeg's own downmix to mono sums stereo at -3 dB (0.707 * (L + R)), not the mean that
    librosa takes, so the resampler only converts the sample format; channel_mean() mixes.
    """
    return av.AudioResampler(format=PACKED_FLOAT, layout=frame.layout, rate=int(frame.sample_rate))


# Planar float (what MP3, AAC, Vorbis and Opus decode to) is read plane by plane where the
# frame has fewer channels than FFmpeg's eight data pointers: the pointer after its last
# plane is then NULL, so PyAV counts its planes right (see the module's docstring).
PLANAR_FLOAT = "fltp"
DATA_POINTERS = 8


class Mixer:
    """Frames like the first one given, as the mean of their channels (librosa's to_mono).

    Packed frames (float, 16- and 32-bit) and planar float frames of fewer than eight
    channels are read directly, the rest through a converter to packed float: the same
    float32 samples either way, without a converter's cost on every frame.
    """

    def __init__(self, frame: av.AudioFrame) -> None:
        name = frame.format.name
        self._planar = name == PLANAR_FLOAT and frame.layout.nb_channels < DATA_POINTERS
        direct = self._planar or name in PACKED
        self._to_float = None if direct else float_converter(frame)

    def mix(self, frame: av.AudioFrame) -> list[np.ndarray]:
        if self._to_float is None:
            return [planar_mean(frame) if self._planar else channel_mean(frame)]
        return [channel_mean(converted) for converted in self._to_float.resample(frame)]

    def flush(self) -> list[np.ndarray]:
        """What the converter still holds, at the end of a segment."""
        if self._to_float is None:
            return []
        return [channel_mean(converted) for converted in self._to_float.resample(None)]


def planar_mean(frame: av.AudioFrame) -> np.ndarray:
    """The channel mean of a planar float32 frame of fewer than eight channels (see Mixer)."""
    channels, count = frame.layout.nb_channels, frame.samples
    if frame.format.name != PLANAR_FLOAT or not 0 < channels < DATA_POINTERS:
        raise AudioError(f"internal error: {channels} channels of {frame.format.name} samples")
    planes = frame.planes
    if len(planes) != channels or any(p.buffer_size < count * 4 for p in planes):
        raise AudioError(
            f"internal error: a frame of {count} samples of {channels} channels holds "
            f"{len(planes)} planes of {[p.buffer_size for p in planes]} bytes"
        )
    planar = np.stack([np.frombuffer(memoryview(p), np.float32, count=count) for p in planes])
    mean: np.ndarray = planar.mean(axis=0, dtype=np.float32)  # as channel_mean() reduces
    return mean


def frame_key(frame: av.AudioFrame) -> tuple[str, str, int]:
    """What a converter is made for: a frame's sample format, channel layout and rate."""
    return (frame.format.name, frame.layout.name, int(frame.sample_rate))


def channel_mean(frame: av.AudioFrame) -> np.ndarray:
    """The mean of a packed frame's channels (float32, 16- or 32-bit integers), float32
    (librosa's to_mono).

    Reads the frame's one buffer with the frame's own channel and sample counts: never
    to_ndarray() or a planar frame's `planes` (see the module's docstring). Integers are
    scaled as FFmpeg converts them to float (by 2^-15 or 2^-31: exactly).
    """
    if frame.format.name not in PACKED:
        raise AudioError(f"internal error: expected packed samples, not {frame.format.name}")
    dtype, scale = PACKED[frame.format.name]
    channels = frame.layout.nb_channels
    count = frame.samples * channels
    if channels < 1 or count == 0:
        return np.zeros(0, np.float32)
    plane = frame.planes[0]  # a packed frame keeps every channel in its first buffer
    if plane.buffer_size < count * np.dtype(dtype).itemsize:
        raise AudioError(
            f"internal error: a frame of {frame.samples} samples of "
            f"{channels} channels holds only {plane.buffer_size} bytes"
        )
    interleaved = np.frombuffer(memoryview(plane), dtype=dtype, count=count)
    if scale is not None:
        interleaved = interleaved.astype(np.float32) * scale
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
        self._mixer: Mixer | None = None
        self._rate = 0
        self._segment_in = 0
        self._segment_out = 0
        self._resampler: soxr.ResampleStream | None = None

    def push(self, frame: av.AudioFrame) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        key = frame_key(frame)
        if key != self._key:
            out.extend(self._end_segment())
            self._start_segment(frame, key)
        mixer = self._mixer
        assert mixer is not None  # _start_segment ran for this frame's segment
        for mono in mixer.mix(frame):
            out.extend(self._resample(mono))
        self.samples_in += frame.samples
        self.seconds_in += frame.samples / frame.sample_rate
        return out

    def finish(self) -> list[np.ndarray]:
        return self._end_segment()

    def _start_segment(self, frame: av.AudioFrame, key: tuple[str, str, int]) -> None:
        self._key = key
        self._rate = int(frame.sample_rate)
        self._mixer = Mixer(frame)
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
        if self._mixer is None:
            return []
        out: list[np.ndarray] = []
        for mono in self._mixer.flush():
            out.extend(self._resample(mono))
        out.extend(self._resample(np.zeros(0, np.float32), last=True))
        # librosa.resample pads its output to ceil(n * sr / native_sr) samples.
        wanted = -(-self._segment_in * self.sample_rate // self._rate)
        if self._segment_in and wanted > self._segment_out:
            out.extend(self._emit(np.zeros(wanted - self._segment_out, np.float32)))
        self._mixer = None
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


def _check_complete(audio: AudioFile, decoded: float, stream: av.AudioStream) -> None:
    path, declared = audio.path, audio.declared
    if not declared or _guessed_from_bitrate(audio, declared):
        return
    if declared - decoded > max(SHORTFALL_SECONDS, SHORTFALL_FRACTION * declared):
        raise TruncatedAudioError(
            f"{path.name} is cut short: its header declares {declared:.1f} s of audio but "
            f"only {decoded:.1f} s could be decoded (the file is probably incomplete)"
        )


def _guessed_from_bitrate(audio: AudioFile, declared: float) -> bool:
    stream = audio.stream
    bit_rate = stream.codec_context.bit_rate or stream.bit_rate
    if not bit_rate:
        return False
    try:
        payload = audio.size - _id3v2_size(audio)
    except OSError:
        return False
    guess = payload * 8 / bit_rate
    slack = BITRATE_GUESS_TOLERANCE * declared + BITRATE_GUESS_SLACK_BYTES * 8 / bit_rate
    return abs(guess - declared) <= slack


def _id3v2_size(audio: AudioFile) -> int:
    head = audio.read_at(0, 10)
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = 0
    for byte in head[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if head[5] & 0x10 else 0
    return 10 + size + footer


def _check_riff_data(audio: AudioFile) -> None:
    """A WAV whose data chunk is cut: FFmpeg silently shortens its duration to the file."""
    path = audio.path
    try:
        declared, present, byte_rate = _riff_data_sizes(audio)
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


def _riff_data_sizes(audio: AudioFile) -> tuple[int, int, int]:
    """(declared data bytes, data bytes present, byte rate) of a RIFF/WAVE file."""
    size = audio.size
    head = audio.read_at(0, 12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise ValueError("not RIFF/WAVE")
    byte_rate, at = 0, 12
    while True:
        chunk = audio.read_at(at, 8)
        if len(chunk) < 8:
            raise ValueError("no data chunk")
        kind, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        at += 8
        if kind == b"data":
            return length, size - at, byte_rate
        if kind == b"fmt ":
            if length < 16:
                raise ValueError("malformed fmt chunk")
            byte_rate = struct.unpack("<I", audio.read_at(at, 16)[8:12])[0]
        at += length + (length & 1)  # chunks are padded to even sizes


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
# Codecs FFmpeg seeks in to the exact sample (checked against the streamed pass in the tests).
EXACT_SEEK_CODECS = ("flac", "alac", "wavpack", "opus", "pcm_")
# Other codecs (MP3, AAC, Vorbis) are sought this long before a section and decoded from
# there: MP3's bit reservoir reaches back about 0.1 s and an MDCT's overlap one frame (23-46
# ms), so their first frames after a seek are dropped. Their timestamps put a chunk within
# a few samples of the streamed decode's (measured in the tests), which a genre cannot tell.
PREROLL_SECONDS = 0.3
# A sought track's end is checked by decoding its last this many seconds (see ends_whole).
END_CHECK_SECONDS = 1.0


def decode_section(
    path: str | Path, start: float, seconds: float, sample_rate: int = AUDIO.sample_rate
) -> tuple[int, np.ndarray] | None:
    """Mono float32 samples of [start, start + seconds) at `sample_rate`, found by seeking.

    Returns (index of the first sample in the whole decoded track, samples), equal to that
    slice of iter_decode's output up to float rounding (exact codecs: resampling starts on an
    instant that lies on both the file's and the output's sample grid; others within a few
    samples). None where the file cannot be cut (no timestamps, or the seek landed after the
    section): decode it all instead. Each call opens the file: AudioFile.section does not.
    """
    with open_audio(Path(path)) as audio:
        return audio.section(start, seconds, sample_rate)


def _time_base(item: av.AudioStream | av.AudioFrame) -> Fraction:
    """`item.time_base`, which PyAV types as optional (None would fail the arithmetic too)."""
    if item.time_base is None:
        raise TypeError(f"{type(item).__name__} has no time_base")
    return item.time_base
