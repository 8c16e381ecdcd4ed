"""The RIFF INFO list of a WAV file: the genre (IGNR) that FFmpeg-based readers and Windows
show, beside the `id3 ` chunk that mutagen keeps.

mutagen reads and writes only a WAV's ID3 chunk, so this module reads IGNR and sets it in a
copy being rewritten (filetags' atomic rewrite), leaving every other chunk, the audio above
all, byte for byte as it was.
"""

from __future__ import annotations

import io
import struct
from typing import IO

GENRE_FIELD = b"IGNR"
_JUNK = b"JUNK"


def read_info(handle: IO[bytes]) -> dict[bytes, str]:
    """The fields of the file's LIST/INFO chunks (a later one wins; empty where none)."""
    return {key: _text(value) for key, value in _all_fields(handle)}


def raw_genre(handle: IO[bytes]) -> bytes | None:
    """IGNR's bytes as the file holds them (None where it has none)."""
    return dict(_all_fields(handle)).get(GENRE_FIELD)


def set_genre(handle: IO[bytes], value: str | bytes | None) -> None:
    """Make the file's INFO list hold IGNR = `value` (text, or the field's raw bytes; None:
    no IGNR), its other fields kept.

    The one list left goes at the end of the file (none where no field is left); old lists
    elsewhere are renamed JUNK (a chunk every reader skips), so no byte of any other chunk
    moves.
    """
    chunks = _info_chunks(handle)
    fields = [(k, v) for k, v in _all_fields(handle) if k != GENRE_FIELD]
    if isinstance(value, str):
        value = value.encode("utf-8") + b"\x00"
    if value is not None:
        fields.append((GENRE_FIELD, value))
    chunk = _list_chunk(fields) if fields else b""
    end = handle.seek(0, io.SEEK_END)
    for offset, length in chunks:
        if offset + 8 + length + (length & 1) >= end:  # the last chunk: overwritten
            end = offset
        else:
            handle.seek(offset)
            handle.write(_JUNK)
    handle.truncate(end)
    if end & 1:  # the last chunk lacked its pad byte
        handle.seek(end)
        handle.write(b"\x00")
        end += 1
    handle.seek(end)
    handle.write(chunk)
    handle.truncate()
    handle.seek(4)
    handle.write(struct.pack("<I", end + len(chunk) - 8))


def _all_fields(handle: IO[bytes]) -> list[tuple[bytes, bytes]]:
    merged: dict[bytes, bytes] = {}
    for offset, length in _info_chunks(handle):
        handle.seek(offset + 8)
        merged.update(_fields(handle.read(length)))
    return list(merged.items())


def _info_chunks(handle: IO[bytes]) -> list[tuple[int, int]]:
    """(offset, length) of every LIST chunk of type INFO."""
    handle.seek(0)
    head = handle.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return []
    size = handle.seek(0, io.SEEK_END)
    found, position = [], 12
    while position + 8 <= size:
        handle.seek(position)
        kind, length = struct.unpack("<4sI", handle.read(8))
        if kind == b"LIST" and handle.read(4) == b"INFO":
            found.append((position, length))
        position += 8 + length + (length & 1)
    return found


def _fields(body: bytes) -> list[tuple[bytes, bytes]]:
    fields, position = [], 4  # after "INFO"
    while position + 8 <= len(body):
        key, length = struct.unpack("<4sI", body[position : position + 8])
        fields.append((key, body[position + 8 : position + 8 + length]))
        position += 8 + length + (length & 1)
    return fields


def _list_chunk(fields: list[tuple[bytes, bytes]]) -> bytes:
    body = b"INFO" + b"".join(
        key + struct.pack("<I", len(value)) + value + (b"\x00" if len(value) & 1 else b"")
        for key, value in fields
    )
    return b"LIST" + struct.pack("<I", len(body)) + body


def _text(value: bytes) -> str:
    # INFO text is NUL-terminated, in no declared encoding: UTF-8 where it decodes, else Latin-1.
    raw = value.split(b"\x00", 1)[0]
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        return raw.decode("latin-1").strip()
