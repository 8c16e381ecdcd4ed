"""Taking uploads in: checked, hashed, stored as pending tracks."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils.text import get_valid_filename

from classifier.engine.errors import AudioError, TagError
from classifier.engine.files import hold, sha256_of
from classifier.engine.filetags import TagInfo, read_tags
from classifier.engine.isolation import Checked, check_isolated
from classifier.models import Source, TagPolicy, Track
from classifier.services import formats
from genreweb.uploads import MULTIPART_SLACK, UNNAMED

# The stored file's name keeps at most this much (UTF-8 bytes) of the uploaded name's stem.
STORED_STEM_BYTES = 100

log = logging.getLogger(__name__)


class UploadRefused(Exception):
    """An upload the server will not keep; the message is shown to the person uploading."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status to answer with: 413 for too large


@dataclass
class Intake:
    track: Track
    created: bool  # False: the same content was already in this user's library

    @property
    def to_analyse(self) -> list[int]:
        """The tracks to queue for analysis now (once the caller's transaction commits)."""
        return [self.track.pk] if self.created else []


# ---------------------------------------------------------------- intake


def max_upload_bytes() -> int:
    return settings.GENREWEB_MAX_UPLOAD_MB * 1024 * 1024


def check_request_size(content_length: str | None) -> None:
    """Refuse a request body far over the limit before Django spools it to disk."""
    try:
        length = int(content_length or 0)
    except ValueError:
        return
    # Multipart framing and form fields add a little around the file itself.
    if length > max_upload_bytes() + MULTIPART_SLACK:
        raise UploadRefused(_too_big_message("This upload", length), status=413)


def accept_upload(owner: Any, upload: UploadedFile, tag_policy: str = TagPolicy.FILL) -> Intake:
    """Check `upload`, then store it as a pending track of `owner`, to be queued for analysis
    (`Intake.to_analyse`).

    The same content uploaded again by the same user returns the existing track. What is
    kept is stored under the extension of the audio found in it, whatever its name said.
    Raises UploadRefused with a message for the person uploading.
    """
    name = PurePosixPath(upload.name or "").name
    if name in ("", ".", ".."):
        name = UNNAMED
    if upload.size is not None and upload.size > max_upload_bytes():
        raise UploadRefused(_too_big_message(name, upload.size), status=413)
    if not upload.size:
        raise UploadRefused(f"{name} is empty.")
    with local_copy(upload) as path:
        digest = sha256_of(path)
        existing = Track.objects.filter(owner=owner, sha256=digest, source=Source.UPLOAD).first()
        if existing is not None:
            return Intake(existing, created=False)
        checked = check_audio(path, name)
        extension, _ = formats.audio_type(checked.info)
        tags = track_tags(checked)
        track = Track(
            owner=owner,
            original_name=name[:255],
            sha256=digest,
            size=upload.size,
            tag_policy=tag_policy,
            **tags,
        )
        try:
            with transaction.atomic():
                track.file.save(stored_name(name, extension), upload, save=False)
                track.save()
        except IntegrityError:
            # The same file arrived twice at once; the first one is kept.
            track.file.delete(save=False)
            return Intake(
                Track.objects.get(owner=owner, sha256=digest, source=Source.UPLOAD), created=False
            )
    return Intake(track, created=True)


def stored_name(name: str, extension: str) -> str:
    """The name a file is stored under: the upload's stem, made safe and short, and the
    extension of the audio really in it ("evil.html" holding MP3 -> "evil.mp3")."""
    try:
        stem = get_valid_filename(PurePosixPath(name).stem)
    except SuspiciousFileOperation:  # nothing usable left
        stem = ""
    stem = stem.encode("utf-8")[:STORED_STEM_BYTES].decode("utf-8", errors="ignore")
    return (stem.strip(".") or "track") + extension


def _too_big_message(name: str, size: int) -> str:
    return (
        f"{name} is {size / 1024 / 1024:.0f} MB; the limit is "
        f"{settings.GENREWEB_MAX_UPLOAD_MB} MB per file."
    )


@contextlib.contextmanager
def local_copy(upload: UploadedFile) -> Iterator[Path]:
    """A path on disk holding the upload's bytes (its temporary file where it has one)."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    suffix = PurePosixPath(upload.name or "").suffix[:10]
    with tempfile.NamedTemporaryFile(
        suffix=".upload" + suffix, dir=settings.FILE_UPLOAD_TEMP_DIR
    ) as handle:
        hold(handle)  # as the upload handler's own files: in use, not abandoned
        upload.seek(0)
        shutil.copyfileobj(upload, handle)
        handle.flush()
        upload.seek(0)
        yield Path(handle.name)


def check_audio(path: Path, name: str) -> Checked:
    """What the upload holds and its tags, or a refusal of a file that does not decode as
    audio: probe it, decode its first block and read its tags in a child process, so that a
    crash on a stranger's file is a refusal, not the end of this web worker.

    `path` is a temporary file; `name` the user's own name for it, the only one a message
    may show.
    """
    try:
        return check_isolated(path)
    except AudioError as exc:
        raise UploadRefused(f"{name} was refused: {_reason(exc, path, name)}") from exc


def _reason(exc: AudioError, path: Path, name: str) -> str:
    """The engine's message about `path`, speaking of the file as "it" or by the user's
    name, never by the server's temporary name."""
    text = str(exc)
    if text.startswith(path.name + " "):  # the engine's messages begin with the file's name
        text = "it" + text[len(path.name) :]
    return text.replace(str(path), name).replace(path.name, name)


def read_tags_quietly(path: Path) -> dict[str, Any]:
    """The Track fields taken from the file's own tags; blank where they cannot be read."""
    try:
        info = read_tags(path)
    except TagError as exc:
        log.info("tags of %s not read: %s", path, exc)
        return {}
    return tag_fields(info)


def track_tags(checked: Checked) -> dict[str, Any]:
    """read_tags_quietly() of what the upload check read."""
    if checked.tags is None:
        log.info("tags of an upload not read: %s", checked.tag_problem)
        return {}
    return tag_fields(checked.tags)


def tag_fields(info: TagInfo) -> dict[str, Any]:
    """The Track fields of a file's tags."""
    return {
        "title": (info.title or "")[:500],
        "artist": (info.artist or "")[:500],
        "album": (info.album or "")[:500],
        "album_artist": (info.album_artist or "")[:500],
        "audio_format": info.format,
        "genres_before": list(info.genres),
        "genres_after": list(info.genres),
    }
