"""The genre fields of a file's tags, recorded before Genreweb writes them and put back by undo.

A snapshot holds, as mutagen reads them, the values of every field the tag writer touches:
ID3 TCON and TXXX:GENREWEB_* frames (with the file's ID3 version), a WAV's RIFF IGNR, Vorbis
GENRE and GENREWEB_* comments (with where they stood among the others) and MP4 (c)gen and
----:com.genreweb:* atoms (mutagen reads a numeric gnre atom as (c)gen). `restore` rewrites
the file (filetags' atomic rewrite) so those fields hold exactly the snapshot's values again;
other tags and the audio are not touched.
A snapshot is plain JSON, so the web app stores it as it is.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import mutagen
from mutagen.id3 import TCON, TXXX
from mutagen.mp4 import MP4FreeForm

from classifier.engine.errors import TagError
from classifier.engine.filetags import (
    MP4_PROVENANCE_PREFIX,
    PROVENANCE_PREFIX,
    id3_save_options,
    kind_of,
    open_file,
    rewrite_atomically,
)
from classifier.engine.riffinfo import raw_genre, set_genre

Snapshot = dict[str, Any]
_MP4_GENRE = "\xa9gen"


def take(path: str | os.PathLike[str]) -> Snapshot:
    """The genre fields of `path`'s tags as they are now (its tags measured against
    tagbounds' limits first, as every read of a file's tags is)."""
    target = Path(path).resolve()
    audio = open_file(target, target, "read")
    with target.open("rb") as handle:
        return _take_from(audio, handle)


def restore(path: str | os.PathLike[str], snapshot: Snapshot, id3_separator: str = "; ") -> None:
    """Make `path`'s genre fields hold exactly `snapshot`'s values (TagError where it cannot:
    the file is then left as it was)."""
    target = Path(path).resolve()
    wanted = _normal(snapshot)

    def apply(handle: IO[bytes], target: Path) -> None:
        _put_back(handle, target, wanted, id3_separator)

    def verify(handle: IO[bytes], target: Path) -> None:
        handle.seek(0)
        found = _take_from(open_file(handle, target, "read"), handle)
        if found != wanted:
            raise TagError(
                f"the genre tags put back into {target.name} read back differently; "
                "the file was left unchanged"
            )

    rewrite_atomically(target, apply, verify)


def same_values(first: Snapshot, second: Snapshot) -> bool:
    """Whether two snapshots hold the same values (as stored JSON or fresh)."""
    return _normal(first) == _normal(second)


# ---------------------------------------------------------------- reading


def _take_from(audio: mutagen.FileType, handle: IO[bytes]) -> Snapshot:
    """The snapshot of the parsed `audio`; `handle` (the same file) for a WAV's RIFF list."""
    fmt, family = kind_of(audio)
    snapshot: Snapshot = {
        "format": fmt,
        "had_tags": audio.tags is not None,
        "fields": _TAKERS[family](audio),
    }
    if family == "id3":
        snapshot["id3_version"] = audio.tags.version[1] if audio.tags is not None else None
    if fmt == "wav":
        riff = raw_genre(handle)
        snapshot["riff_genre"] = None if riff is None else base64.b64encode(riff).decode()
    return _normal(snapshot)


def _normal(snapshot: Snapshot) -> Snapshot:
    # Tuples and lists compare unequal; stored JSON has only lists.
    normal: Snapshot = json.loads(json.dumps(snapshot))
    return normal


def _is_genre_frame(frame: Any) -> bool:
    return bool(
        frame.FrameID == "TCON"
        or (frame.FrameID == "TXXX" and frame.desc.startswith(PROVENANCE_PREFIX))
    )


def _take_id3(audio: mutagen.FileType) -> list[dict[str, Any]]:
    if audio.tags is None:
        return []
    frames = [frame for frame in audio.tags.values() if _is_genre_frame(frame)]
    return [
        {
            "id": frame.FrameID,
            "desc": getattr(frame, "desc", ""),
            "encoding": int(frame.encoding),
            "text": [str(text) for text in frame.text],
        }
        for frame in sorted(frames, key=lambda frame: str(frame.HashKey))
    ]


def _is_genre_comment(key: str) -> bool:
    return key.upper() == "GENRE" or key.upper().startswith(PROVENANCE_PREFIX)


def _take_vorbis(audio: mutagen.FileType) -> list[list[Any]]:
    # Where each stood, so a put-back comment list is the old one in its order too.
    if audio.tags is None:
        return []
    return [
        [index, key, value]
        for index, (key, value) in enumerate(audio.tags)
        if _is_genre_comment(key)
    ]


def _is_genre_atom(key: str) -> bool:
    return key == _MP4_GENRE or key.startswith(MP4_PROVENANCE_PREFIX)


def _take_mp4(audio: mutagen.FileType) -> list[dict[str, Any]]:
    if audio.tags is None:
        return []
    atoms = []
    for key in sorted(key for key in audio.tags if _is_genre_atom(key)):
        values = audio.tags[key]
        if key.startswith(MP4_PROVENANCE_PREFIX):
            values = [
                [base64.b64encode(bytes(value)).decode(), value.dataformat, value.version]
                for value in values
            ]
        atoms.append({"key": key, "values": list(values)})
    return atoms


_TAKERS: dict[str, Callable[[mutagen.FileType], list[Any]]] = {
    "id3": _take_id3,
    "vorbis": _take_vorbis,
    "mp4": _take_mp4,
}


# ---------------------------------------------------------------- putting back


def _put_back(handle: IO[bytes], target: Path, wanted: Snapshot, separator: str) -> None:
    audio = open_file(handle, target, "write")
    fmt, family = kind_of(audio)
    if fmt != wanted["format"]:
        raise TagError(f"{target.name} is no longer a {wanted['format']} file")
    if audio.tags is None:
        audio.add_tags()
    tags: Any = audio.tags  # mutagen types FileType.tags as None
    _PUTTERS[family](tags, wanted["fields"])
    handle.seek(0)
    if not wanted["had_tags"] and not tags.keys():
        audio.delete(handle)  # it had no tag at all: none is left, not an empty one
    else:
        audio.save(handle, **id3_save_options(audio, wanted.get("id3_version"), separator))
    if fmt == "wav":
        riff = wanted.get("riff_genre")
        set_genre(handle, None if riff is None else base64.b64decode(riff))


def _put_id3(tags: Any, fields: list[dict[str, Any]]) -> None:
    for key in [key for key, frame in tags.items() if _is_genre_frame(frame)]:
        del tags[key]
    for field in fields:
        # mutagen's frame classes are unannotated (its py.typed covers no signatures).
        if field["id"] == "TCON":
            tags.add(TCON(encoding=field["encoding"], text=field["text"]))  # type: ignore[no-untyped-call]
        else:
            tags.add(TXXX(encoding=field["encoding"], desc=field["desc"], text=field["text"]))  # type: ignore[no-untyped-call]


def _put_vorbis(tags: Any, fields: list[list[Any]]) -> None:
    kept = [(key, value) for key, value in tags if not _is_genre_comment(key)]
    for index, key, value in fields:  # ascending, so each lands where it stood
        kept.insert(index, (key, value))
    tags[:] = kept


def _put_mp4(tags: Any, fields: list[dict[str, Any]]) -> None:
    for key in [key for key in tags if _is_genre_atom(key)]:
        del tags[key]
    for field in fields:
        values = field["values"]
        if field["key"].startswith(MP4_PROVENANCE_PREFIX):
            values = [
                MP4FreeForm(  # type: ignore[no-untyped-call]  # unannotated, as above
                    base64.b64decode(data), dataformat=dataformat, version=version
                )
                for data, dataformat, version in values
            ]
        tags[field["key"]] = values


_PUTTERS: dict[str, Callable[[Any, Any], None]] = {
    "id3": _put_id3,
    "vorbis": _put_vorbis,
    "mp4": _put_mp4,
}
