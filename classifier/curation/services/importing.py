"""Adding labelled audio to the dataset: folders, zip archives and single files."""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.core.files import File
from django.db import DatabaseError, IntegrityError, transaction
from django.utils.text import slugify

from classifier.curation.models import Genre, Sample
from classifier.curation.services import CurationError
from classifier.engine.config import AUDIO_SUFFIXES
from classifier.engine.errors import TagError, unexpected_error
from classifier.engine.files import sha256_of
from classifier.engine.training import labelled_folder

log = logging.getLogger(__name__)

# A zip import refuses archives that would unpack to more than this (a zip bomb stops here).
MAX_UNZIPPED_BYTES = 4 * 1024**3
_IGNORED_DIRS = {"__MACOSX"}

Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    created: list[int] = field(default_factory=list)  # new sample ids
    duplicates: list[str] = field(default_factory=list)  # files whose audio is already a sample
    new_genres: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.created)} imported", f"{len(self.duplicates)} already there"]
        if self.new_genres:
            parts.append(f"new genres: {', '.join(self.new_genres)}")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        return "; ".join(parts)


def genre_for(spelling: str, result: ImportResult | None = None) -> Genre:
    """The genre a folder name means; an unknown name becomes a new genre of the taxonomy."""
    genre = Genre.objects.resolve(spelling)
    if genre is not None:
        return genre
    name = slugify(spelling)[:64]
    if not name:
        raise CurationError(f"{spelling!r} cannot be a genre name")
    genre, created = Genre.objects.get_or_create(name=name, defaults={"tag_spelling": spelling})
    if created and result is not None:
        result.new_genres.append(name)
    return genre


def add_sample(
    path: Path,
    genre: Genre,
    *,
    source: str = Sample.Source.IMPORT,
    status: str = Sample.Status.PROPOSED,
    artist: str = "",
    source_ref: str = "",
    notes: str = "",
    original_name: str = "",
) -> Sample | None:
    """Copy one audio file into the dataset; None when the same audio is already a sample."""
    digest = sha256_of(path)
    if Sample.objects.filter(content_hash=digest).exists():
        return None
    sample = Sample(
        content_hash=digest,
        genre=genre,
        source=source,
        status=status,
        artist=artist[:200] or artist_from_tags(path),
        source_ref=source_ref[:300],
        notes=notes,
        original_name=(original_name or path.name)[:300],
    )
    try:
        with transaction.atomic(), open(path, "rb") as handle:
            sample.audio.save(
                f"{digest[:2]}/{digest}{path.suffix.lower()}", File(handle), save=True
            )
    except IntegrityError:
        # Another import of the same audio won the race.
        if sample.audio:
            sample.audio.storage.delete(sample.audio.name)
        return None
    return sample


def artist_from_tags(path: Path) -> str:
    from classifier.engine.filetags import read_tags

    try:
        return (read_tags(path).artist or "")[:200]
    except (TagError, OSError, ValueError):
        return ""


def import_folder(
    root: Path,
    *,
    status: str = Sample.Status.PROPOSED,
    source: str = Sample.Source.IMPORT,
    ref_prefix: str | None = None,
    on_progress: Progress | None = None,
) -> ImportResult:
    """Import root/<genre>/**/<audio>; files nested as root/<genre>/<artist>/... get that artist."""
    root = Path(root)
    if not root.is_dir():
        raise CurationError(f"{root} is not a folder")
    items = [item for item in labelled_folder(root) if item.genre not in _IGNORED_DIRS]
    if not items:
        raise CurationError(
            f"{root} has no audio files in genre subfolders (expected DIR/<genre>/<file>)"
        )
    result = ImportResult()
    genres: dict[str, Genre] = {}
    prefix = root.name if ref_prefix is None else ref_prefix
    for n, item in enumerate(items, 1):
        try:
            genre = genres.get(item.genre) or genre_for(item.genre, result)
            genres[item.genre] = genre
            relative = item.path.relative_to(root)
            nested = relative.parts[1] if len(relative.parts) > 2 else ""
            sample = add_sample(
                item.path,
                genre,
                source=source,
                status=status,
                artist=nested,
                source_ref=f"{prefix}/{relative.as_posix()}",
            )
        except (CurationError, OSError) as exc:
            result.errors.append(f"{item.path.name}: {exc}")
        except DatabaseError:
            raise  # the database is down or the schema wrong: no file can be imported
        except Exception as exc:  # one file's unforeseen failure must not end the import
            result.errors.append(unexpected_error(log, item.path.name, exc, "imported"))
        else:
            if sample is None:
                result.duplicates.append(str(relative))
            else:
                result.created.append(sample.pk)
        if on_progress:
            on_progress(n, len(items))
    return result


def import_zip(archive: IO[bytes], name: str, **options) -> ImportResult:
    """Import a zip of genre folders (optionally inside one top folder)."""
    with tempfile.TemporaryDirectory(prefix="curation-import-") as tmp:
        root = Path(tmp)
        _safe_extract(archive, root)
        return import_folder(_dataset_root(root), ref_prefix=name, **options)


def _safe_extract(archive: IO[bytes], target: Path) -> None:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise CurationError("the upload is not a zip archive") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if sum(m.file_size for m in members) > MAX_UNZIPPED_BYTES:
            raise CurationError(
                f"the archive unpacks to more than {MAX_UNZIPPED_BYTES // 1024**3} GB"
            )
        for member in members:
            parts = Path(member.filename).parts
            if (
                member.filename.startswith("/")
                or ".." in parts
                or Path(member.filename).suffix.lower() not in AUDIO_SUFFIXES
            ):
                continue  # only audio, and nothing outside the target
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
                raise CurationError(f"{member.filename} in the archive is damaged: {exc}") from None


def _dataset_root(root: Path) -> Path:
    """Step into a single wrapping folder (dataset.zip -> dataset/<genre>/...)."""
    while True:
        entries = [p for p in root.iterdir() if p.name not in _IGNORED_DIRS]
        if (
            len(entries) == 1
            and entries[0].is_dir()
            and any(p.is_dir() for p in entries[0].iterdir())
            and Genre.objects.resolve(entries[0].name) is None
        ):
            root = entries[0]
        else:
            return root


def sample_from_track(
    track, genre: Genre | None = None, *, status: str = Sample.Status.PROPOSED
) -> Sample | None:
    """A user's analysed upload (classifier.models.Track) as a sample, for staff to review.

    Labelled `genre`, else with the genre the engine found; None when that is unknown or the
    audio is already a sample.
    """
    genre = genre or (Genre.objects.resolve(track.primary_genre) if track.primary_genre else None)
    if genre is None:
        return None
    return add_sample(
        Path(track.file.path),
        genre,
        source=Sample.Source.UPLOAD,
        status=status,
        artist=track.artist or "",
        source_ref=f"track:{track.pk}",
        original_name=track.original_name,
        notes=f"Uploaded by {track.owner}; engine said {track.primary_genre or '?'} "
        f"({track.model_version}).",
    )
