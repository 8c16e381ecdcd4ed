"""Adding labelled audio to the dataset: folders, zip archives and single files."""

from __future__ import annotations

import csv
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.core.files import File
from django.db import DatabaseError, IntegrityError, transaction

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
LABELS_CSV = "labels.csv"
MAX_LABELS_BYTES = 16 * 1024**2
# The column names a labels.csv may use (lower case), first the canonical one.
FILE_COLUMNS = ("file", "path", "filename")
GENRE_COLUMNS = ("genres", "genre", "labels")
ARTIST_COLUMNS = ("artist",)
_GENRE_SEPARATORS = re.compile(r"[;|,]")

Progress = Callable[[int, int], None]


@dataclass
class ImportResult:
    created: list[int] = field(default_factory=list)  # new sample ids
    duplicates: list[str] = field(default_factory=list)  # files whose audio is already a sample
    new_genres: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # files not imported, and why
    warnings: list[str] = field(default_factory=list)  # imported, but not all their labels

    def summary(self) -> str:
        parts = [f"{len(self.created)} imported", f"{len(self.duplicates)} already there"]
        if self.new_genres:
            parts.append(f"new genres: {', '.join(self.new_genres)}")
        if self.errors:
            parts.append(f"{len(self.errors)} failed")
        if self.warnings:
            parts.append(f"{len(self.warnings)} with genres not recognised")
        return "; ".join(parts)

    def messages(self) -> list[str]:
        return self.errors + self.warnings


def genre_for(spelling: str, result: ImportResult | None = None) -> Genre:
    """The genre a folder name means; an unknown name becomes a new genre of the taxonomy."""
    genre = Genre.objects.resolve(spelling)
    if genre is not None:
        return genre
    ambiguous = Genre.objects.taxonomy_candidates(spelling)
    if len(ambiguous) > 1:
        raise CurationError(
            f"the genre {spelling!r} is ambiguous ({' or '.join(sorted(ambiguous))}): "
            "name one of them"
        )
    name = " ".join(spelling.split())[:64]
    if not name:
        raise CurationError(f"{spelling!r} cannot be a genre name")
    genre, created = Genre.objects.get_or_create(name=name, defaults={"tag_spelling": name})
    if created and result is not None:
        result.new_genres.append(name)
    return genre


def add_sample(
    path: Path,
    genres: list[Genre],
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
            sample.genres.set(genres)
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
    """Import root/<genre>/**/<audio>; files nested as root/<genre>/<artist>/... get that artist.

    A root holding a labels.csv is imported from it instead (several genres per file)."""
    root = Path(root)
    if not root.is_dir():
        raise CurationError(f"{root} is not a folder")
    if (root / LABELS_CSV).is_file():
        return import_labels_csv(
            root, status=status, source=source, ref_prefix=ref_prefix, on_progress=on_progress
        )
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
                [genre],
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
                or not (_is_audio(Path(member.filename)) or _is_labels(member))
            ):
                continue  # only audio and labels, and nothing outside the target
            destination = target.joinpath(*parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(member) as src, open(destination, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (zipfile.BadZipFile, NotImplementedError, EOFError) as exc:
                raise CurationError(f"{member.filename} in the archive is damaged: {exc}") from None


def _is_audio(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _is_labels(member: zipfile.ZipInfo) -> bool:
    return Path(member.filename).name.lower() == LABELS_CSV and member.file_size <= MAX_LABELS_BYTES


def _dataset_root(root: Path) -> Path:
    """Step into a single wrapping folder (dataset.zip -> dataset/<genre>/... or
    dataset/labels.csv)."""
    while True:
        entries = [p for p in root.iterdir() if p.name not in _IGNORED_DIRS]
        if (root / LABELS_CSV).is_file():
            return root
        if (
            len(entries) == 1
            and entries[0].is_dir()
            and (
                (entries[0] / LABELS_CSV).is_file() or any(p.is_dir() for p in entries[0].iterdir())
            )
            and Genre.objects.resolve(entries[0].name) is None
        ):
            root = entries[0]
        else:
            return root


# ---------------------------------------------------------------- labels.csv


@dataclass
class LabelRow:
    line: int  # in the file, header = 1
    file: str
    genres: list[str]  # the spellings as written
    artist: str

    def where(self) -> str:
        return f"{LABELS_CSV} line {self.line} ({self.file or 'no file'})"


def read_labels(path: Path) -> list[LabelRow]:
    """The rows of a labels.csv; a file that cannot be read as one is refused with the reason."""
    if path.stat().st_size > MAX_LABELS_BYTES:
        raise CurationError(f"{LABELS_CSV} is over {MAX_LABELS_BYTES // 1024**2} MB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CurationError(f"{LABELS_CSV} is not UTF-8 text") from None
    try:
        reader = csv.DictReader(text.splitlines())
        header = {(name or "").strip().lower(): name for name in reader.fieldnames or []}
        file_col = _column(header, FILE_COLUMNS, required=True)
        genre_col = _column(header, GENRE_COLUMNS, required=True)
        artist_col = _column(header, ARTIST_COLUMNS, required=False)
        rows = []
        for record in reader:
            raw = record.get(genre_col) or ""
            rows.append(
                LabelRow(
                    reader.line_num,
                    (record.get(file_col) or "").strip(),
                    [g.strip() for g in _GENRE_SEPARATORS.split(raw) if g.strip()],
                    (record.get(artist_col) or "").strip() if artist_col else "",
                )
            )
    except csv.Error as exc:
        raise CurationError(f"{LABELS_CSV} is not a readable CSV file: {exc}") from None
    return rows


def _column(header: dict[str, str], names: tuple[str, ...], *, required: bool) -> str | None:
    for name in names:
        if name in header:
            return header[name]
    if required:
        raise CurationError(
            f"{LABELS_CSV} needs a column {names[0]!r} (or {', '.join(names[1:])}); "
            f"its columns: {', '.join(header) or 'none'}"
        )
    return None


def import_labels_csv(
    root: Path,
    *,
    status: str = Sample.Status.PROPOSED,
    source: str = Sample.Source.IMPORT,
    ref_prefix: str | None = None,
    on_progress: Progress | None = None,
) -> ImportResult:
    """Import the files root/labels.csv names, each with its genres (several per file).

    Genres are matched through the genre table and the taxonomy; an unknown or ambiguous
    spelling is reported on its row (and kept in the sample's notes), never a new genre. A row
    without any known genre, or whose file is missing, is reported and not imported; audio
    files the CSV does not name are reported too.
    """
    rows = read_labels(root / LABELS_CSV)
    if not rows:
        raise CurationError(f"{LABELS_CSV} names no files")
    result = ImportResult()
    prefix = root.name if ref_prefix is None else ref_prefix
    known: dict[str, Genre | None] = {}
    named: set[Path] = set()
    for n, row in enumerate(rows, 1):
        try:
            path = _row_path(root, row)
            named.add(path)
            genres = _row_genres(row, known, result)
            sample = add_sample(
                path,
                genres,
                source=source,
                status=status,
                artist=row.artist,
                source_ref=f"{prefix}/{row.file}",
                notes=_row_notes(row, genres),
            )
        except (CurationError, OSError) as exc:
            result.errors.append(f"{row.where()}: {exc}")
        except DatabaseError:
            raise
        except Exception as exc:  # one row's unforeseen failure must not end the import
            result.errors.append(unexpected_error(log, row.where(), exc, "imported"))
        else:
            if sample is None:
                result.duplicates.append(row.file)
            else:
                result.created.append(sample.pk)
        if on_progress:
            on_progress(n, len(rows))
    _report_unnamed(root, named, result)
    return result


def _row_path(root: Path, row: LabelRow) -> Path:
    if not row.file:
        raise CurationError("no file named")
    relative = Path(row.file)
    if relative.is_absolute() or ".." in relative.parts:
        raise CurationError("the file must be inside the imported folder")
    path = root / relative
    if not _is_audio(path):
        raise CurationError("not an audio file name")
    if not path.is_file():
        raise CurationError("no such file")
    return path


def _row_genres(row: LabelRow, known: dict[str, Genre | None], result: ImportResult) -> list[Genre]:
    """The row's genres; the spellings that name none are reported (and the row refused if
    none is left)."""
    genres: list[Genre] = []
    unknown: list[str] = []
    for spelling in row.genres:
        if spelling not in known:
            known[spelling] = Genre.objects.resolve(spelling)
        genre = known[spelling]
        if genre is None:
            unknown.append(_why_unknown(spelling))
        elif genre not in genres:
            genres.append(genre)
    if not genres:
        reasons = "; ".join(unknown) if unknown else "the genres column is empty"
        raise CurationError(f"no known genre ({reasons})")
    if unknown:
        result.warnings.append(f"{row.where()}: imported without {'; '.join(unknown)}")
    return genres


def _why_unknown(spelling: str) -> str:
    candidates = Genre.objects.taxonomy_candidates(spelling)
    if len(candidates) > 1:
        return f"{spelling!r} is ambiguous ({' or '.join(sorted(candidates))})"
    return f"{spelling!r} is not a known genre"


def _row_notes(row: LabelRow, genres: list[Genre]) -> str:
    # The labels as written stay with the sample, whatever was recognised of them.
    said = "; ".join(row.genres)
    matched = {g.name for g in genres}
    if sorted(matched) == sorted(row.genres):
        return ""
    return f"{LABELS_CSV}: {said}"


def _report_unnamed(root: Path, named: set[Path], result: ImportResult) -> None:
    unnamed = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and _is_audio(p) and p not in named and _IGNORED_DIRS.isdisjoint(p.parts)
    )
    for name in unnamed:
        result.errors.append(f"{name}: not in {LABELS_CSV}, not imported")


def sample_from_track(
    track,
    genre: Genre | None = None,
    *,
    status: str = Sample.Status.PROPOSED,
    genres: list[Genre] | None = None,
    notes: str = "",
) -> Sample | None:
    """A user's analysed upload (classifier.models.Track) as a sample, for staff to review.

    Labelled `genres` (or `genre`), else with the genre the engine found; None when that is
    unknown or the audio is already a sample. `notes` say why it was proposed.
    """
    genre = genre or (Genre.objects.resolve(track.primary_genre) if track.primary_genre else None)
    labels = genres or ([genre] if genre is not None else [])
    if not labels:
        return None
    said = (
        f"Uploaded by {track.owner}; engine said {track.primary_genre or '?'} "
        f"({track.model_version})."
    )
    return add_sample(
        Path(track.audio_path),
        labels,
        source=Sample.Source.UPLOAD,
        status=status,
        artist=track.artist or "",
        source_ref=f"track:{track.pk}",
        original_name=track.original_name,
        notes=f"{said} {notes}".strip(),
    )
