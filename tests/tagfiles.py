"""Real files' tags as other taggers leave them, and digests of their audio, for the tests of
the tag writer and of undo."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import av
import mutagen
from mutagen.flac import Picture
from mutagen.id3 import APIC, COMM, ID3, TALB, TIT2, TPE1, TRCK, PictureType
from mutagen.mp4 import MP4Cover

from classifier.engine.riffinfo import read_info

ID3_FORMATS = ["mp3", "wav", "aiff"]
VORBIS_FORMATS = ["flac", "ogg", "opus"]


def png() -> bytes:
    """A real 1x1 PNG, so the cover is an image any player could show."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00"))
        + chunk(b"IEND", b"")
    )


COVER = png()


def family(fmt: str) -> str:
    return "id3" if fmt in ID3_FORMATS else "vorbis" if fmt in VORBIS_FORMATS else "mp4"


def set_genres(path: Path, fmt: str, genres: list[str]) -> None:
    """Give the file existing genres the way another tagger would, with mutagen directly."""
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    if family(fmt) == "id3":
        from mutagen.id3 import TCON

        audio.tags.setall("TCON", [TCON(encoding=3, text=genres)])
    elif family(fmt) == "vorbis":
        audio.tags["genre"] = genres
    else:
        audio.tags["\xa9gen"] = genres
    audio.save()


def decorate(path: Path, fmt: str) -> None:
    """Title, artist, album, track number, comment and a front cover, as a library has them."""
    audio = mutagen.File(path)
    if audio.tags is None:
        audio.add_tags()
    tags = audio.tags
    if family(fmt) == "id3":
        for frame in (
            TIT2(encoding=3, text="Night Train"),
            TPE1(encoding=3, text="The Testers"),
            TALB(encoding=3, text="Signals"),
            TRCK(encoding=3, text="3/10"),
            COMM(encoding=3, lang="eng", desc="", text="kept as it is"),
            APIC(
                encoding=3, mime="image/png", type=PictureType.COVER_FRONT, desc="front", data=COVER
            ),
        ):
            tags.add(frame)
    elif family(fmt) == "vorbis":
        tags.update(
            {
                "TITLE": "Night Train",
                "ARTIST": "The Testers",
                "ALBUM": "Signals",
                "TRACKNUMBER": "3",
                "TRACKTOTAL": "10",
                "COMMENT": "kept as it is",
            }
        )
        picture = flac_picture()
        if fmt == "flac":
            audio.add_picture(picture)
        else:
            tags["METADATA_BLOCK_PICTURE"] = base64.b64encode(picture.write()).decode("ascii")
    else:
        tags.update(
            {
                "\xa9nam": "Night Train",
                "\xa9ART": "The Testers",
                "\xa9alb": "Signals",
                "trkn": [(3, 10)],
                "\xa9cmt": "kept as it is",
                "covr": [MP4Cover(COVER, imageformat=MP4Cover.FORMAT_PNG)],
            }
        )
    audio.save()


def flac_picture() -> Picture:
    picture = Picture()
    picture.type, picture.mime, picture.desc, picture.data = 3, "image/png", "front", COVER
    picture.width, picture.height, picture.depth = 1, 1, 24
    return picture


def packet_digest(path: Path) -> tuple[str, int]:
    digest, packets = hashlib.sha256(), 0
    with av.open(str(path), metadata_errors="replace") as container:
        for packet in container.demux(container.streams.audio[0]):
            if packet.size:
                digest.update(f"{packet.pts}/{packet.dts}/{packet.size}".encode())
                digest.update(bytes(packet))
                packets += 1
    return digest.hexdigest(), packets


def whole_tags(path: Path) -> Any:
    """Every tag value of the file as mutagen reads it (ID3 version, frame encodings, Vorbis
    comment order and vendor, MP4 atom data types, FLAC pictures, a WAV's RIFF INFO)."""
    audio = mutagen.File(path)
    tags = audio.tags
    if tags is None:
        dump: Any = None
    elif isinstance(tags, ID3):
        dump = (tags.version, sorted((key, repr(vars(frame))) for key, frame in tags.items()))
    elif isinstance(tags, list):  # a Vorbis comment: an ordered list of (key, value)
        dump = (tags.vendor, list(tags))
    else:
        dump = sorted((key, _mp4_values(values)) for key, values in tags.items())
    pictures = [repr(vars(picture)) for picture in getattr(audio, "pictures", [])]
    riff = None
    if path.suffix == ".wav":
        with path.open("rb") as handle:
            riff = read_info(handle)
    return dump, pictures, riff


def _mp4_values(values: list[Any]) -> str:
    return repr(
        [
            (bytes(v), getattr(v, "dataformat", None), getattr(v, "imageformat", None))
            if isinstance(v, bytes)
            else v
            for v in values
        ]
    )
