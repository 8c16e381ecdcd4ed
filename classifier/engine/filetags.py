"""Read a music file's tags and write genres into them without risking the file.

Three tag families cover the seven formats Genreweb writes: ID3 (MP3, and an ID3 chunk in WAV and
AIFF), Vorbis comments (FLAC, Ogg Vorbis, Opus) and MP4 atoms (M4A/AAC). Writes go to a copy in
the same folder that replaces the original only once it is complete, synced and read back, so a
crash, a full disk or a mutagen error leaves the original exactly as it was.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

import mutagen
from mutagen.aiff import AIFF
from mutagen.flac import FLAC
from mutagen.id3 import TCON, TXXX, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4, AtomDataType, MP4FreeForm
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from classifier.engine.errors import TagBoundsError, TagError
from classifier.engine.files import atomic_write
from classifier.engine.riffinfo import GENRE_FIELD, read_info, set_genre
from classifier.engine.tagbounds import check_tags

POLICIES = ("fill", "replace", "merge")
ID3_VERSIONS = (3, 4)
SUPPORTED = "MP3, FLAC, Ogg Vorbis, Opus, M4A, WAV, AIFF"
PROVENANCE_PREFIX = "GENREWEB_"
MP4_PROVENANCE_PREFIX = "----:com.genreweb:"
_PROVENANCE_KEY = re.compile(r"[A-Za-z0-9_]+")
_VORBIS_COVERS = ("metadata_block_picture", "coverart")


@dataclass
class TagInfo:
    title: str | None
    artist: str | None
    album: str | None
    genres: list[str]
    has_cover: bool
    format: str
    provenance: dict[str, str] = field(default_factory=dict)
    album_artist: str | None = None  # who the album is by (a compilation: "Various Artists")


@dataclass
class WriteResult:
    changed: bool
    before: list[str]
    after: list[str]


@dataclass(frozen=True)
class _Kind:
    format: str
    family: str


# mutagen picks the type from the file's content; the name's suffix only breaks ties.
_KINDS: dict[type[mutagen.FileType], _Kind] = {
    MP3: _Kind("mp3", "id3"),
    FLAC: _Kind("flac", "vorbis"),
    OggVorbis: _Kind("ogg", "vorbis"),
    OggOpus: _Kind("opus", "vorbis"),
    MP4: _Kind("m4a", "mp4"),
    WAVE: _Kind("wav", "id3"),
    AIFF: _Kind("aiff", "id3"),
}


# ---------------------------------------------------------------- public API


def read_tags(
    path: str | os.PathLike[str], *, id3_separator: str = "; ", handle: BinaryIO | None = None
) -> TagInfo:
    """The title, artist, album, genres, cover presence and Genreweb provenance of `path`.

    ID3 genre values are split on `id3_separator` (stripped), since ID3v2.3 holds only one
    value per frame and write_genres joins several with it there.
    `handle`: `path` already open (the decoder's one open of it), read without opening the
    file again and left at the position it had.
    """
    target = Path(path)
    if handle is None:
        return _read_fields(open_file(target, target, "read"), target, id3_separator)
    position = handle.tell()
    try:
        bounds = check_tags(target, handle)
        if not bounds.ok:
            raise TagBoundsError(bounds.note(target.name))
        handle.seek(0)
        return _read_fields(open_file(handle, target, "read"), handle, id3_separator)
    finally:
        handle.seek(position)


def _read_fields(audio: mutagen.FileType, source: Path | IO[bytes], separator: str) -> TagInfo:
    kind = _KINDS[type(audio)]
    fields = _READERS[kind.family](audio, separator)
    if kind.format == "wav":
        fields["genres"] = _with_riff_genres(fields["genres"], source, separator)
    return TagInfo(format=kind.format, **fields)


def write_genres(
    path: str | os.PathLike[str],
    genres: list[str],
    policy: str = "fill",
    *,
    id3_version: int | None = 4,
    id3_separator: str = "; ",
    provenance: dict[str, str] | None = None,
) -> WriteResult:
    """Write `genres` into the file's tags following `policy`; see POLICIES.

    fill: write only where the file has no genre; replace: set exactly these; merge: the
    file's genres first, then the new ones it lacks (compared case-insensitively).
    Provenance is recorded only when the genres are written, since it describes them.
    Nothing is written (bytes and mtime untouched) when the genres would not change.
    id3_version None keeps the ID3 version the file has (2.4 where it has no ID3 tag).
    """
    _check_options(policy, id3_version, id3_separator, provenance)
    wanted = _clean_genres(genres, id3_separator)
    target = Path(path).resolve()  # through symlinks, so the link itself stays a link
    audio = open_file(target, target, "write")
    before = _READERS[_KINDS[type(audio)].family](audio, id3_separator)["genres"]
    if _KINDS[type(audio)].format == "wav":
        before = _with_riff_genres(before, target, id3_separator)
    after = plan_genres(before, wanted, policy)
    if after == before:
        return WriteResult(changed=False, before=before, after=list(before))
    edit = _Edit(after, provenance or {}, id3_version, id3_separator)
    rewrite_atomically(target, edit.apply, edit.verify)
    return WriteResult(changed=True, before=before, after=after)


# ---------------------------------------------------------------- options and policies


def _check_options(
    policy: str, id3_version: int | None, id3_separator: str, provenance: dict[str, str] | None
) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown genre policy {policy!r}; valid policies: {', '.join(POLICIES)}")
    if id3_version is not None and id3_version not in ID3_VERSIONS:
        raise ValueError(f"id3_version must be 3 or 4, not {id3_version!r}")
    if not id3_separator.strip():
        raise ValueError("id3_separator must hold a visible character, such as '; '")
    for key, value in (provenance or {}).items():
        if not _PROVENANCE_KEY.fullmatch(key) or not isinstance(value, str):
            raise ValueError(
                f"provenance entries must be word-character keys with text "
                f"values; got {key!r}: {value!r}"
            )


def _clean_genres(genres: list[str], separator: str) -> list[str]:
    # A bare string would otherwise be written one letter per genre.
    if isinstance(genres, str):
        raise ValueError(f"genres must be a list of names, not the string {genres!r}")
    names = _unique(name.strip() for name in genres if name and name.strip())
    if not names:
        raise ValueError("genres is empty: give at least one genre name")
    # ID3 readers split on the separator, so such a name would not read back as one genre.
    joined = [name for name in names if separator.strip() in name]
    if joined:
        raise ValueError(f"genre names may not contain {separator.strip()!r}: {joined}")
    return names


def _unique(names: Any) -> list[str]:
    seen: set[str] = set()
    kept = []
    for name in names:
        if name.casefold() not in seen:
            seen.add(name.casefold())
            kept.append(name)
    return kept


def plan_genres(before: list[str], wanted: list[str], policy: str) -> list[str]:
    """The genres a file holding `before` holds once `wanted` is written with `policy`."""
    if policy == "fill":
        return list(before) if before else wanted
    if policy == "replace":
        return wanted
    present = {name.casefold() for name in before}
    return list(before) + [name for name in wanted if name.casefold() not in present]


# ---------------------------------------------------------------- opening


def open_file(source: Path | IO[bytes], target: Path, verb: str) -> mutagen.FileType:
    """`source` parsed by mutagen as one of the supported types, or a TagError about `target`.

    A file's tags are measured against tagbounds' limits before mutagen parses them (a copy
    being written was measured as the file it copies).
    """
    if isinstance(source, Path):
        _check_bounds(source, target, verb)
    try:
        audio: mutagen.FileType | None = mutagen.File(source, options=list(_KINDS))
    except Exception as exc:  # mutagen raises many types for damaged files
        raise TagError(_explain(exc, target, verb)) from exc
    if audio is None:
        raise TagError(
            f"{target.name} is not a file whose tags Genreweb can {verb} (supported: {SUPPORTED})"
        )
    return audio


def kind_of(audio: mutagen.FileType) -> tuple[str, str]:
    """The format ("mp3", ...) and tag family ("id3", "vorbis", "mp4") of an opened file."""
    kind = _KINDS[type(audio)]
    return kind.format, kind.family


def _check_bounds(source: Path, target: Path, verb: str) -> None:
    try:
        is_file = source.is_file()
    except OSError:
        return  # mutagen's own error explains it
    bounds = check_tags(source) if is_file else None
    if bounds is not None and not bounds.ok:
        untouched = " (the file was left unchanged)" if verb == "write" else ""
        raise TagBoundsError(bounds.note(target.name) + untouched)


def _explain(exc: BaseException, target: Path, verb: str) -> str:
    cause = _os_error(exc)
    if isinstance(cause, FileNotFoundError):
        return f"{target.name} does not exist (looked in {target.parent})"
    if isinstance(cause, IsADirectoryError):
        return f"{target.name} is a folder, not an audio file"
    if isinstance(cause, PermissionError):
        return f"Genreweb may not {verb} {target.name}: permission denied in {target.parent}"
    if cause is not None and cause.errno == errno.ENOSPC:
        return f"the disk is full: there is no room to rewrite {target.name}"
    if cause is not None and cause.errno == errno.EFBIG:
        return f"{target.name} would grow past the file size limit this process may write"
    if cause is not None:
        return f"could not {verb} the tags of {target.name}: {cause.strerror or cause}"
    return (
        f"{target.name} looks damaged, or is not really the kind of file its name says: "
        f"its tags could not be parsed ({exc})"
    )


def _os_error(exc: BaseException | None) -> OSError | None:
    # mutagen re-raises IOErrors as its own error types; the OSError stays in the chain.
    while exc is not None:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


# ---------------------------------------------------------------- reading, per family


def _read_id3(audio: mutagen.FileType, separator: str) -> dict[str, Any]:
    tags = audio.tags
    if tags is None:
        return _empty_fields()
    genres = [
        part
        for frame in tags.getall("TCON")
        for value in frame.genres
        for part in _split(value, separator)
    ]
    provenance = {
        frame.desc[len(PROVENANCE_PREFIX) :].lower(): _joined(frame.text)
        for frame in tags.getall("TXXX")
        if frame.desc.startswith(PROVENANCE_PREFIX)
    }
    return {
        "title": _id3_text(tags, "TIT2"),
        "artist": _id3_text(tags, "TPE1"),
        "album": _id3_text(tags, "TALB"),
        "album_artist": _id3_text(tags, "TPE2"),
        "genres": _unique(genres),
        "has_cover": bool(tags.getall("APIC")),
        "provenance": provenance,
    }


def _read_vorbis(audio: mutagen.FileType, separator: str) -> dict[str, Any]:
    tags = audio.tags
    if tags is None:
        return _empty_fields()
    pictures = getattr(audio, "pictures", [])  # FLAC keeps covers in their own blocks
    # Iterating a Vorbis comment yields (key, value) pairs, so the keys come from keys().
    keys = tags.keys()
    provenance = {
        key[len(PROVENANCE_PREFIX) :].lower(): _joined(tags[key])
        for key in keys
        if key.upper().startswith(PROVENANCE_PREFIX)
    }
    return {
        "title": _vorbis_text(tags, "title"),
        "artist": _vorbis_text(tags, "artist"),
        "album": _vorbis_text(tags, "album"),
        "album_artist": _vorbis_text(tags, "albumartist") or _vorbis_text(tags, "album artist"),
        "genres": _clean_values(tags.get("genre", [])),
        "has_cover": bool(pictures) or any(key in tags for key in _VORBIS_COVERS),
        "provenance": provenance,
    }


def _read_mp4(audio: mutagen.FileType, separator: str) -> dict[str, Any]:
    tags = audio.tags
    if tags is None:
        return _empty_fields()
    provenance = {
        key[len(MP4_PROVENANCE_PREFIX) :].lower(): _joined(_freeform_text(values))
        for key, values in tags.items()
        if key.startswith(MP4_PROVENANCE_PREFIX)
    }
    # mutagen turns the numeric `gnre` atom into `©gen` text while loading.
    return {
        "title": _joined(tags.get("\xa9nam")),
        "artist": _joined(tags.get("\xa9ART")),
        "album": _joined(tags.get("\xa9alb")),
        "album_artist": _joined(tags.get("aART")),
        "genres": _clean_values(tags.get("\xa9gen", [])),
        "has_cover": bool(tags.get("covr")),
        "provenance": provenance,
    }


_READERS: dict[str, Callable[[mutagen.FileType, str], dict[str, Any]]] = {
    "id3": _read_id3,
    "vorbis": _read_vorbis,
    "mp4": _read_mp4,
}


def _with_riff_genres(genres: list[str], source: Path | IO[bytes], separator: str) -> list[str]:
    """A WAV's ID3 genres, then those of its RIFF INFO IGNR field that they lack."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            info = read_info(handle)
    else:
        info = read_info(source)
    return _unique([*genres, *_split(info.get(GENRE_FIELD, ""), separator)])


def _empty_fields() -> dict[str, Any]:
    return {
        "title": None,
        "artist": None,
        "album": None,
        "album_artist": None,
        "genres": [],
        "has_cover": False,
        "provenance": {},
    }


def _id3_text(tags: Any, frame_id: str) -> str | None:
    frame = tags.get(frame_id)
    return _joined([str(text) for text in frame.text]) if frame is not None else None


def _vorbis_text(tags: Any, key: str) -> str | None:
    return _joined(tags.get(key))


def _joined(values: list[str] | None) -> str | None:
    # Several artists (or titles) are shown together rather than dropping all but one.
    values = [value for value in (values or []) if value]
    return "; ".join(values) if values else None


def _split(value: str, separator: str) -> list[str]:
    return [part.strip() for part in value.split(separator.strip()) if part.strip()]


def _clean_values(values: list[str]) -> list[str]:
    return _unique(value.strip() for value in values if value.strip())


def _freeform_text(values: list[bytes]) -> list[str]:
    return [bytes(value).decode("utf-8", errors="replace") for value in values]


# ---------------------------------------------------------------- writing, per family


def _write_id3(audio: mutagen.FileType, genres: list[str], provenance: dict[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()  # WAV and AIFF straight from an encoder carry no ID3 chunk
    tags: Any = audio.tags  # an ID3 (mutagen types FileType.tags as None)
    # mutagen's frame classes are unannotated (its py.typed covers no signatures).
    tags.setall("TCON", [TCON(encoding=Encoding.UTF8, text=genres)])  # type: ignore[no-untyped-call]
    for key, value in provenance.items():
        tags.add(
            TXXX(
                encoding=Encoding.UTF8,  # type: ignore[no-untyped-call]  # as TCON
                desc=PROVENANCE_PREFIX + key.upper(),
                text=[value],
            )
        )


def _write_vorbis(audio: mutagen.FileType, genres: list[str], provenance: dict[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()
    tags: Any = audio.tags  # a VComment (mutagen types FileType.tags as None)
    tags["GENRE"] = list(genres)
    for key, value in provenance.items():
        tags[PROVENANCE_PREFIX + key.upper()] = [value]


def _write_mp4(audio: mutagen.FileType, genres: list[str], provenance: dict[str, str]) -> None:
    if audio.tags is None:
        audio.add_tags()
    tags: Any = audio.tags  # an MP4Tags (mutagen types FileType.tags as None)
    tags["\xa9gen"] = list(genres)
    for key, value in provenance.items():
        tags[MP4_PROVENANCE_PREFIX + key.lower()] = [
            # mutagen's MP4FreeForm is unannotated (its py.typed covers no signatures).
            MP4FreeForm(
                value.encode("utf-8"),  # type: ignore[no-untyped-call]
                dataformat=AtomDataType.UTF8,
            )
        ]


_WRITERS: dict[str, Callable[[mutagen.FileType, list[str], dict[str, str]], None]] = {
    "id3": _write_id3,
    "vorbis": _write_vorbis,
    "mp4": _write_mp4,
}


@dataclass(frozen=True)
class _Edit:
    genres: list[str]
    provenance: dict[str, str]
    id3_version: int | None
    id3_separator: str

    def apply(self, handle: IO[bytes], target: Path) -> None:
        """Write the tags into the open copy `handle` of `target`."""
        audio = open_file(handle, target, "write")
        family = _KINDS[type(audio)].family
        options = id3_save_options(audio, self.id3_version, self.id3_separator)
        _WRITERS[family](audio, self.genres, self.provenance)
        handle.seek(0)
        audio.save(handle, **options)
        if _KINDS[type(audio)].format == "wav":  # FFmpeg and Windows read IGNR, not ID3
            set_genre(handle, self.id3_separator.join(self.genres))

    def verify(self, handle: IO[bytes], target: Path) -> None:
        """Refuse to replace the original unless the copy parses and holds the new genres."""
        handle.seek(0)
        audio = open_file(handle, target, "write")
        found = _READERS[_KINDS[type(audio)].family](audio, self.id3_separator)["genres"]
        if _KINDS[type(audio)].format == "wav":
            handle.seek(0)
            riff = read_info(handle).get(GENRE_FIELD, "")
            found = found if riff == self.id3_separator.join(self.genres) else [*found, riff]
        if found != self.genres:
            raise TagError(
                f"the genres written into {target.name} read back as {found} "
                f"instead of {self.genres}; the original was left unchanged"
            )


def id3_save_options(
    audio: mutagen.FileType, version: int | None, separator: str
) -> dict[str, Any]:
    """mutagen's save() options for `audio`: ID3 `version` (None: the one the file has, 2.4
    where it has none), several values joined with `separator` in 2.3; none for other tags."""
    if _KINDS[type(audio)].family != "id3":
        return {}
    if version is None:
        held = audio.tags.version[1] if audio.tags is not None else None
        version = held if held in ID3_VERSIONS else 4
    return {"v2_version": version, "v23_sep": separator}


# ---------------------------------------------------------------- the atomic rewrite


def rewrite_atomically(target: Path, *steps: Callable[[IO[bytes], Path], None]) -> None:
    """Run `steps` on a synced copy of `target` in its folder, then rename it over `target`."""
    try:
        original = target.stat()
        with atomic_write(target, like=original) as temp, temp.open("r+b") as handle:
            with target.open("rb") as source:
                shutil.copyfileobj(source, handle)
            for step in steps:
                handle.seek(0)
                step(handle, target)
    except TagError:
        raise
    except Exception as exc:
        raise TagError(_explain(exc, target, "write")) from exc
