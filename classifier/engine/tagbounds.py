"""Bounds on a file's tags, checked before mutagen or FFmpeg parses them.

Neither bounds what it parses: FFmpeg keeps a file's metadata in a dictionary whose every
insertion searches it, so 100,000 ID3 frames (or FLAC comments) cost it over a minute per open,
and mutagen inflates a compressed ID3 frame whatever its size (a 285 KB file costs it 780 MB).
check_tags() walks only the structure that holds the tags (ID3v2 frame headers, RIFF and IFF
chunks, FLAC metadata blocks, MP4 atoms, the Ogg comment header), counting entries and inflating
compressed frames against a cap, and says whether the tags are within bounds. Where they are
not, the tags are not read (a note says why) and FFmpeg is given a view of the file in which
they are hidden (TagCheck.start and TagCheck.patches), so the audio is still analysed.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

# A real file's tags hold tens of entries, a few hundred with chapters or lyrics; reading
# this many costs FFmpeg about 0.1 s.
MAX_ENTRIES = 4096
# Cover art of several MB is common; this leaves room for a few of them.
MAX_TAG_BYTES = 64 * 1024 * 1024
# What the compressed frames of one tag may inflate to, all together.
MAX_INFLATED_BYTES = 16 * 1024 * 1024
# RIFF (WAV) and IFF (AIFF) files hold a handful of chunks.
MAX_CHUNKS = 4096

_ID3_HEADER = 10
_FLAC_PADDING = 1
_FLAC_COMMENT = 4


class TagBoundsExceeded(Exception):
    """Raised by the walkers; check_tags() turns it into a TagCheck.problem."""


@dataclass(frozen=True)
class TagCheck:
    """What check_tags() found. `problem` is None when the tags are within bounds."""

    problem: str | None = None
    start: int = 0  # FFmpeg reads the file from here: past an MP3's oversized ID3v2 tag
    patches: tuple[tuple[int, bytes], ...] = field(default=())  # bytes that hide the tags

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def masked(self) -> bool:
        """Whether FFmpeg must read a view of the file rather than the file itself."""
        return bool(self.start or self.patches)

    def note(self, name: str) -> str:
        return f"The tags of {name} were not read: {self.problem}."


def check_tags(path: Path, handle: BinaryIO | None = None) -> TagCheck:
    """Whether the tags of the file at `path` are small enough to parse (see the module).

    `handle`: the file already open (the decoder's), read from wherever it stands. Remembered
    per file, size and modification time: the tag reader checks a file the decoder checked.
    """
    try:
        stat = os.fstat(handle.fileno()) if handle is not None else path.stat()
    except OSError:
        return TagCheck()  # the decoder and the tag reader report unreadable files themselves
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    found = _checked.get(key)
    if found is None:
        found = _check_handle(handle) if handle is not None else _check_path(path)
        _checked[key] = found
        while len(_checked) > _REMEMBERED:
            _checked.pop(next(iter(_checked)))
    return found


# (path, size, mtime_ns) -> its check, the oldest first.
_checked: dict[tuple[str, int, int], TagCheck] = {}
_REMEMBERED = 64


def _check_path(path: Path) -> TagCheck:
    try:
        with path.open("rb") as handle:
            return _check_handle(handle)
    except OSError:
        return TagCheck()


def _check_handle(handle: BinaryIO) -> TagCheck:
    try:
        handle.seek(0)
        head = handle.read(12)
        walker = _walker(head)
        return walker(handle) if walker is not None else TagCheck()
    except (OSError, struct.error, ValueError, IndexError):
        # An unreadable or cut structure holds nothing past the cut: the decoder and the tag
        # reader report such files themselves.
        return TagCheck()


def open_masked(path: Path, check: TagCheck, handle: BinaryIO | None = None) -> io.RawIOBase:
    """A read-only view of `path` (or of `handle`, the file open) from check.start, with
    check.patches applied. Closing the view closes the handle."""
    return _MaskedFile(handle if handle is not None else path.open("rb"), check)


def _walker(head: bytes) -> Callable[[BinaryIO], TagCheck] | None:
    if head[:3] == b"ID3":
        return _check_leading_id3
    if head[:4] == b"fLaC":
        return _check_flac
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return lambda handle: _check_chunks(handle, "<", {b"id3 ", b"ID3 "}, {b"LIST"})
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return lambda handle: _check_chunks(handle, ">", {b"ID3 ", b"id3 "}, set())
    if head[4:8] == b"ftyp":
        return _check_mp4
    if head[:4] == b"OggS":
        return _check_ogg
    return None


# ---------------------------------------------------------------- ID3v2


def _syncsafe(raw: bytes) -> int:
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
    return value


def _check_leading_id3(handle: BinaryIO) -> TagCheck:
    """An MP3 (or any file) that starts with one or more ID3v2 tags, as FFmpeg skips them."""
    position = 0
    problem = None
    while True:
        handle.seek(position)
        header = handle.read(_ID3_HEADER)
        if len(header) < _ID3_HEADER or header[:3] != b"ID3":
            break
        size = _ID3_HEADER + _syncsafe(header[6:10]) + (10 if header[5] & 0x10 else 0)
        if problem is None and size > MAX_TAG_BYTES:
            problem = _too_big("its ID3 tag", size)
        elif problem is None:
            problem = _id3_problem(header + handle.read(size - _ID3_HEADER))
        position += size
    return TagCheck() if problem is None else TagCheck(problem, start=position)


def _id3_problem(tag: bytes) -> str | None:
    try:
        _walk_id3(tag)
    except TagBoundsExceeded as exc:
        return str(exc)
    return None


def _walk_id3(tag: bytes) -> None:
    """Count the frames of the ID3v2 tag `tag` and inflate its compressed ones, against the
    bounds; TagBoundsExceeded past one."""
    version, flags = tag[3], tag[5]
    if len(tag) > MAX_TAG_BYTES:
        raise TagBoundsExceeded(_too_big("its ID3 tag", len(tag)))
    body = tag[_ID3_HEADER:]
    if version < 4 and flags & 0x80:  # ID3v2.2/2.3 unsynchronise the whole tag
        body = body.replace(b"\xff\x00", b"\xff")
    if flags & 0x40 and version >= 3:  # an extended header comes first
        extended = _syncsafe(body[:4]) if version == 4 else 4 + struct.unpack(">I", body[:4])[0]
        body = body[extended:]
    _walk_id3_frames(body, version)


def _walk_id3_frames(body: bytes, version: int) -> None:
    header = 6 if version == 2 else 10
    syncsafe = version == 4 and _sizes_are_syncsafe(body)
    position, count, inflated = 0, 0, 0
    while position + header <= len(body):
        frame_id = body[position : position + (3 if version == 2 else 4)]
        if not frame_id.isalnum() or not frame_id.isupper() and not frame_id.isdigit():
            break  # padding, or the end of what a parser can make sense of
        size, frame_flags = _frame_size(body, position, version, syncsafe)
        count += 1
        if count > MAX_ENTRIES:
            raise TagBoundsExceeded(_too_many(f"ID3 frames (at least {count:,})"))
        data = body[position + header : position + header + size]
        inflated += _inflated_size(data, version, frame_flags, MAX_INFLATED_BYTES - inflated)
        position += header + size


def _frame_size(body: bytes, position: int, version: int, syncsafe: bool) -> tuple[int, int]:
    if version == 2:
        return int.from_bytes(body[position + 3 : position + 6], "big"), 0
    raw = body[position + 4 : position + 8]
    size = _syncsafe(raw) if syncsafe else struct.unpack(">I", raw)[0]
    return size, struct.unpack(">H", body[position + 8 : position + 10])[0]


def _sizes_are_syncsafe(body: bytes) -> bool:
    """ID3v2.4 frame sizes are syncsafe, but some writers (iTunes) wrote plain integers:
    mutagen takes a size byte with its high bit set as the sign of those; so does this."""
    position = 0
    while position + 10 <= len(body) and body[position : position + 4].isalnum():
        raw = body[position + 4 : position + 8]
        if any(byte & 0x80 for byte in raw):
            return False
        position += 10 + _syncsafe(raw)
    return True


def _inflated_size(data: bytes, version: int, flags: int, budget: int) -> int:
    """How many bytes a compressed frame's data inflates to (0 for one not compressed)."""
    if version == 4 and flags & 0x0008:
        packed = data[4:] if flags & 0x0001 else data  # after the data length indicator
        if flags & 0x0002:  # this frame alone is unsynchronised
            packed = packed.replace(b"\xff\x00", b"\xff")
    elif version == 3 and flags & 0x0080:
        packed = data[4:]  # after the inflated size
    else:
        return 0
    inflater = zlib.decompressobj()
    try:
        size = len(inflater.decompress(packed, max(budget, 0) + 1))
    except zlib.error:
        return 0  # not inflatable at all: the parser drops the frame
    if size > budget:
        raise TagBoundsExceeded(
            f"its compressed ID3 frames inflate to more than "
            f"{MAX_INFLATED_BYTES // (1024 * 1024)} MB"
        )
    return size


# ---------------------------------------------------------------- RIFF (WAV) and IFF (AIFF)


def _check_chunks(
    handle: BinaryIO, order: str, id3_chunks: set[bytes], list_chunks: set[bytes]
) -> TagCheck:
    """A WAV or AIFF file's chunks: an `id3 ` chunk within the ID3 bounds, LIST chunks within
    the entry bound, and not too many chunks. Oversized tag chunks are renamed to JUNK in
    FFmpeg's view (it skips chunks it does not know)."""
    handle.seek(0, io.SEEK_END)
    end = handle.tell()
    position, count = 12, 0
    patches: list[tuple[int, bytes]] = []
    problem: str | None = None
    while position + 8 <= end:
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            break
        kind, length = header[:4], struct.unpack(order + "I", header[4:])[0]
        count += 1
        if count > MAX_CHUNKS:
            problem = problem or _too_many(f"chunks (at least {count:,})")
            break
        found = _chunk_problem(handle, kind, length, id3_chunks, list_chunks, order)
        if found is not None:
            problem = problem or found
            patches.append((position, b"JUNK"))
        position += 8 + length + (length & 1)
    return TagCheck() if problem is None else TagCheck(problem, patches=tuple(patches))


def _chunk_problem(
    handle: BinaryIO,
    kind: bytes,
    length: int,
    id3_chunks: set[bytes],
    list_chunks: set[bytes],
    order: str,
) -> str | None:
    if kind in id3_chunks:
        if length > MAX_TAG_BYTES:
            return _too_big("its ID3 chunk", length)
        tag = handle.read(length)
        return _id3_problem(tag) if tag[:3] == b"ID3" else None
    if kind in list_chunks:
        if length > MAX_TAG_BYTES:
            return _too_big("its LIST chunk", length)
        return _list_problem(handle.read(length), order)
    return None


def _list_problem(data: bytes, order: str) -> str | None:
    position, count = 4, 0  # after the list's type ("INFO")
    while position + 8 <= len(data):
        length = struct.unpack(order + "I", data[position + 4 : position + 8])[0]
        count += 1
        if count > MAX_ENTRIES:
            return _too_many(f"INFO fields (at least {count:,})")
        position += 8 + length + (length & 1)
    return None


# ---------------------------------------------------------------- FLAC


def _check_flac(handle: BinaryIO) -> TagCheck:
    """FLAC metadata blocks: few enough, and Vorbis comment blocks with few enough comments.
    An oversized comment block becomes PADDING in FFmpeg's view (its type byte changed)."""
    position, count, total = 4, 0, 0
    patches: list[tuple[int, bytes]] = []
    problem: str | None = None
    while True:
        handle.seek(position)
        header = handle.read(4)
        if len(header) < 4:
            break
        kind, length = header[0] & 0x7F, int.from_bytes(header[1:4], "big")
        count, total = count + 1, total + length
        if count > MAX_ENTRIES or total > MAX_TAG_BYTES:
            problem = problem or _too_many(f"metadata blocks (at least {count:,})")
            break
        if kind == _FLAC_COMMENT:
            found = _comment_count_problem(handle.read(min(length, 4096)), "<")
            if found is not None:
                problem = problem or found
                patches.append((position, bytes(((header[0] & 0x80) | _FLAC_PADDING,))))
        if header[0] & 0x80:  # the last metadata block
            break
        position += 4 + length
    return TagCheck() if problem is None else TagCheck(problem, patches=tuple(patches))


def _comment_count_problem(data: bytes, order: str) -> str | None:
    """The comment count of a Vorbis comment block (vendor length, vendor, count)."""
    if len(data) < 4:
        return None
    vendor = struct.unpack(order + "I", data[:4])[0]
    raw = data[4 + vendor : 8 + vendor]
    if len(raw) < 4:
        return None if vendor < MAX_TAG_BYTES else _too_big("its comment header", vendor)
    comments = struct.unpack(order + "I", raw)[0]
    return _too_many(f"comments ({comments:,})") if comments > MAX_ENTRIES else None


# ---------------------------------------------------------------- MP4 / M4A

_MP4_CONTAINERS = (b"moov", b"udta")


def _check_mp4(handle: BinaryIO) -> TagCheck:
    """The iTunes-style tag list (moov/udta/meta/ilst or moov/meta/ilst): few enough items.
    An oversized `meta` atom becomes `free` in FFmpeg's view."""
    handle.seek(0, io.SEEK_END)
    found = _find_meta(handle, 0, handle.tell(), 0)
    if found is None:
        return TagCheck()
    position, problem = found
    return TagCheck(problem, patches=((position + 4, b"free"),))


def _find_meta(handle: BinaryIO, start: int, end: int, depth: int) -> tuple[int, str] | None:
    position, count = start, 0
    while position + 8 <= end and count <= MAX_CHUNKS:
        handle.seek(position)
        header = handle.read(16)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I", header[:4])[0], header[4:8]
        header_size = 8
        if size == 1:
            if len(header) < 16:
                return None
            size, header_size = struct.unpack(">Q", header[8:16])[0], 16
        elif size == 0:
            size = end - position
        if size < header_size:
            return None
        count += 1
        if kind == b"meta":
            problem = _meta_problem(handle, position + header_size + 4, position + size)
            if problem is not None:
                return position, problem
        elif kind in _MP4_CONTAINERS and depth < 2:
            found = _find_meta(handle, position + header_size, position + size, depth + 1)
            if found is not None:
                return found
        position += size
    return None


def _meta_problem(handle: BinaryIO, start: int, end: int) -> str | None:
    if end - start > MAX_TAG_BYTES:
        return _too_big("its MP4 tag atom", end - start)
    position = start
    while position + 8 <= end:
        handle.seek(position)
        header = handle.read(8)
        if len(header) < 8:
            return None
        size, kind = struct.unpack(">I4s", header)
        if size < 8:
            return None
        if kind == b"ilst":
            return _ilst_problem(handle, position + 8, position + size)
        position += size
    return None


def _ilst_problem(handle: BinaryIO, start: int, end: int) -> str | None:
    position, count = start, 0
    while position + 8 <= end:
        handle.seek(position)
        header = handle.read(4)
        if len(header) < 4:
            return None
        size = struct.unpack(">I", header)[0]
        if size < 8:
            return None
        count += 1
        if count > MAX_ENTRIES:
            return _too_many(f"MP4 tag items (at least {count:,})")
        position += size
    return None


# ---------------------------------------------------------------- Ogg (Vorbis, Opus)


def _check_ogg(handle: BinaryIO) -> TagCheck:
    """The comment header (the stream's second packet), read from its pages up to the byte
    bound. Pages carry checksums, so there is no view that hides it: an oversized one makes
    the tags unreadable and the audio is decoded as it is only when its size is what FFmpeg
    parses quickly."""
    handle.seek(0)
    packets: list[bytearray] = [bytearray()]
    read = 0
    while len(packets) < 3:
        header = handle.read(27)
        if len(header) < 27 or header[:4] != b"OggS":
            return TagCheck()
        lacing = handle.read(header[26])
        payload = handle.read(sum(lacing))
        read += 27 + len(lacing) + len(payload)
        if read > MAX_TAG_BYTES:
            return TagCheck(_too_big("its comment header", read))
        offset = 0
        for value in lacing:
            packets[-1] += payload[offset : offset + value]
            offset += value
            if value < 255:
                packets.append(bytearray())
        if len(packets) >= 2 and len(packets[1]) >= 4096:
            break  # enough of the comment header to read its count
    comment = bytes(packets[1]) if len(packets) > 1 else b""
    for magic in (b"\x03vorbis", b"OpusTags"):
        if comment.startswith(magic):
            problem = _comment_count_problem(comment[len(magic) :], "<")
            return TagCheck() if problem is None else TagCheck(problem)
    return TagCheck()


# ---------------------------------------------------------------- messages


def _too_many(what: str) -> str:
    return f"it holds too many {what}; Genreweb reads at most {MAX_ENTRIES:,}"


def _too_big(what: str, size: int) -> str:
    return (
        f"{what} is {size / (1024 * 1024):.0f} MB; Genreweb reads at most "
        f"{MAX_TAG_BYTES // (1024 * 1024)} MB of tags"
    )


# ---------------------------------------------------------------- the masked view


class _MaskedFile(io.RawIOBase):
    """The file from `start`, with `patches` (offsets in the file) overlaid on its bytes."""

    def __init__(self, handle: BinaryIO, check: TagCheck) -> None:
        super().__init__()
        self._file = handle
        self._start = check.start
        self._patches = check.patches
        self._file.seek(self._start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        at = self._file.tell()
        data = self._file.read(len(buffer))
        if self._patches:
            data = self._patched(at, data)
        buffer[: len(data)] = data
        return len(data)

    def _patched(self, at: int, data: bytes) -> bytes:
        out = bytearray(data)
        for offset, patch in self._patches:
            low, high = max(offset, at), min(offset + len(patch), at + len(data))
            if low < high:
                out[low - at : high - at] = patch[low - offset : high - offset]
        return bytes(out)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            offset += self._start
        return self._file.seek(offset, whence) - self._start

    def tell(self) -> int:
        return self._file.tell() - self._start

    def close(self) -> None:
        self._file.close()
        super().close()
