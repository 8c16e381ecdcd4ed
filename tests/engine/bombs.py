"""Files whose tags are built to exhaust a parser: tens of thousands of ID3 frames or
comments, a compressed ID3 frame that inflates a thousandfold, a WAV whose `id3 ` chunk holds
such a tag. Made at run time from a small real audio file; the tag tests and the upload tests
use them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# A 4,096-fold inflation: 256 MiB of one byte compresses to about 256 KB.
INFLATED_BYTES = 256 * 1024 * 1024


def syncsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def id3_frame(frame_id: bytes, body: bytes, version: int = 4, flags: int = 0) -> bytes:
    size = syncsafe(len(body)) if version == 4 else struct.pack(">I", len(body))
    return frame_id + size + struct.pack(">H", flags) + body


def id3_tag(frames: bytes, version: int = 4) -> bytes:
    return b"ID3" + bytes((version, 0, 0)) + syncsafe(len(frames)) + frames


def txxx(desc: str, value: str, version: int = 4) -> bytes:
    return id3_frame(b"TXXX", b"\x03" + desc.encode() + b"\x00" + value.encode(), version)


def many_frames_tag(count: int, version: int = 4) -> bytes:
    """An ID3v2 tag of `count` user-text frames, each with its own name (so that a parser
    keeping them in a dictionary grows it by one each time)."""
    return id3_tag(b"".join(txxx(f"k{i}", "v", version) for i in range(count)), version)


def inflating_tag(inflated: int = INFLATED_BYTES, version: int = 4) -> bytes:
    """An ID3v2 tag with a title and one compressed comment that inflates to `inflated` bytes."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(b"\x03eng\x00")]
    block = b"A" * (1024 * 1024)  # compressed a block at a time, to spare the test's memory
    for start in range(0, inflated - 5, len(block)):
        parts.append(packer.compress(block[: inflated - 5 - start]))
    packed = b"".join([*parts, packer.flush()])
    if version == 4:  # compression (0x0008) needs a data length indicator (0x0001)
        body, flags = syncsafe(inflated) + packed, 0x0009
    else:  # ID3v2.3: compression (0x0080), the inflated size before the data
        body, flags = struct.pack(">I", inflated) + packed, 0x0080
    title = id3_frame(b"TIT2", b"\x03Bomb", version)
    return id3_tag(title + id3_frame(b"COMM", body, version, flags), version)


def mp3_with_tag(mp3: Path, tag: bytes, out: Path) -> Path:
    """`mp3`'s audio (any tag it had removed) behind `tag`."""
    data = mp3.read_bytes()
    if data[:3] == b"ID3":
        data = data[10 + _syncsafe_value(data[6:10]) :]
    out.write_bytes(tag + data)
    return out


def wav_with_id3_chunk(wav: Path, tag: bytes, out: Path) -> Path:
    """`wav` with `tag` appended as an `id3 ` chunk (where mutagen and FFmpeg look for one)."""
    data = bytearray(wav.read_bytes())
    chunk = b"id3 " + struct.pack("<I", len(tag)) + tag + (b"\x00" if len(tag) % 2 else b"")
    data += chunk
    data[4:8] = struct.pack("<I", len(data) - 8)
    out.write_bytes(bytes(data))
    return out


def flac_with_comments(flac: Path, count: int, out: Path) -> Path:
    """`flac` with a Vorbis comment block of `count` differently named comments in place of
    its metadata blocks other than STREAMINFO."""
    data = flac.read_bytes()
    assert data[:4] == b"fLaC"
    position, streaminfo = 4, b""
    while True:
        header = data[position]
        length = int.from_bytes(data[position + 1 : position + 4], "big")
        if header & 0x7F == 0:
            streaminfo = data[position + 4 : position + 4 + length]
        position += 4 + length
        if header & 0x80:
            break
    vendor = b"bomb"
    entries = [f"K{i}=v".encode() for i in range(count)]
    comment = (
        struct.pack("<I", len(vendor))
        + vendor
        + struct.pack("<I", count)
        + b"".join(struct.pack("<I", len(e)) + e for e in entries)
    )
    blocks = (
        bytes((0,))
        + len(streaminfo).to_bytes(3, "big")
        + streaminfo
        + bytes((0x80 | 4,))
        + len(comment).to_bytes(3, "big")
        + comment
    )
    out.write_bytes(b"fLaC" + blocks + data[position:])
    return out


def _syncsafe_value(raw: bytes) -> int:
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
    return value


def m4a_with_items(m4a: Path, count: int) -> Path:
    """`m4a` with `count` differently named free-form tag items."""
    from mutagen.mp4 import MP4, MP4FreeForm

    audio = MP4(m4a)
    for i in range(count):
        audio[f"----:org.example:k{i}"] = [MP4FreeForm(b"v")]
    audio.save()
    return m4a


def ogg_with_comments(ogg: Path, count: int) -> Path:
    """`ogg` (Vorbis) with `count` differently named comments."""
    from mutagen.oggvorbis import OggVorbis

    audio = OggVorbis(ogg)
    for i in range(count):
        audio[f"K{i}"] = ["v"]
    audio.save()
    return ogg
