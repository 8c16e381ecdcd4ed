"""Downloads: a track's file under a readable name, or many tracks as one zip."""

from __future__ import annotations

import zipfile
from pathlib import PurePosixPath
from typing import IO

from django.core.exceptions import SuspiciousFileOperation
from django.db.models import QuerySet
from django.http import FileResponse
from django.utils.text import get_valid_filename

from classifier.models import OutsideFolder, Track
from classifier.services import formats


def download_name(track: Track) -> str:
    """ "Artist - Title.ext" where the tags say so, else the name it was uploaded with; the
    extension is the stored file's, which follows the audio found in it."""
    suffix = PurePosixPath(track.file_name).suffix
    if track.title and track.artist:
        name = _valid(f"{track.artist} - {track.title}{suffix}")
        if name:
            return name
    return _valid(PurePosixPath(track.original_name).stem + suffix) or f"track-{track.pk}{suffix}"


def _valid(name: str) -> str:
    try:
        return get_valid_filename(name)
    except SuspiciousFileOperation:  # nothing usable left of it
        return ""


def file_response(track: Track) -> FileResponse:
    """The stored file as an attachment, under an audio type (never what its upload name
    suggested: an MP3 uploaded as "x.html" goes out as audio/mpeg, "x.mp3")."""
    return FileResponse(
        open(track.audio_path, "rb"),  # noqa: SIM115 (FileResponse closes it)
        as_attachment=True,
        filename=download_name(track),
        content_type=formats.content_type(track.file_name),
    )


def write_zip(tracks: QuerySet[Track], handle: IO[bytes]) -> int:
    """Write the tracks' stored (tagged) files into a zip in `handle`; how many (a library
    folder's file that is gone is left out)."""
    used: set[str] = set()
    count = 0
    # Audio is compressed already: storing is as small and far faster than deflating.
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for track in tracks.select_related("folder"):
            try:
                path = track.audio_path
                archive.write(path, _unique_name(download_name(track), used))
            except (OSError, OutsideFolder):  # a folder file gone since its last scan
                continue
            count += 1
    return count


def _unique_name(name: str, used: set[str]) -> str:
    stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
    candidate, n = name, 1
    while candidate.lower() in used:
        n += 1
        candidate = f"{stem} ({n}){suffix}"
    used.add(candidate.lower())
    return candidate
