"""Downloads: a track's file under a readable name, or many tracks as one zip."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import IO

from django.utils.text import get_valid_filename

from classifier.models import Track


def download_name(track: Track) -> str:
    """"Artist - Title.ext" where the tags say so, else the name it was uploaded with."""
    suffix = PurePosixPath(track.original_name).suffix
    if track.title and track.artist:
        name = get_valid_filename(f"{track.artist} - {track.title}{suffix}")
        if name:
            return name
    return get_valid_filename(track.original_name) or f"track-{track.pk}{suffix}"


def write_zip(tracks: Iterable[Track], handle: IO[bytes]) -> int:
    """Write the tracks' stored (tagged) files into a zip in `handle`; how many."""
    used: set[str] = set()
    count = 0
    # Audio is compressed already: storing is as small and far faster than deflating.
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED) as archive:
        for track in tracks:
            archive.write(track.file.path, _unique_name(download_name(track), used))
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
