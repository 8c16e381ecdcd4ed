"""The web app's domain functions: taking uploads in, analysing tracks, writing their tags.

Celery tasks (classifier/tasks.py) and views only call these, so each step runs and is
tested without a broker. A track moves pending -> processing -> done | failed; a task
claims it with a conditional update, so two messages for one track never both analyse it.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.text import get_valid_filename

from classifier.errors import AudioError, EngineError, TagError
from classifier.models import Stage, Status, TagPolicy, Track

log = logging.getLogger(__name__)

# A track whose analysis kills its worker this many times is marked failed, not retried.
MAX_ATTEMPTS = 3
# Progress is written to the database at most every this much of a stage.
PROGRESS_STEP = 0.1
_HASH_BLOCK = 1 << 20


class UploadRefused(Exception):
    """An upload the server will not keep; the message is shown to the person uploading."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status to answer with: 413 for too large


@dataclass
class Intake:
    track: Track
    created: bool  # False: the same content was already in this user's library


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
    if length > max_upload_bytes() + 64 * 1024:
        raise UploadRefused(_too_big_message("This upload", length), status=413)


def accept_upload(owner: Any, upload: UploadedFile,
                  tag_policy: str = TagPolicy.FILL) -> Intake:
    """Check `upload`, then store it as a pending track of `owner` queued for analysis.

    The same content uploaded again by the same user returns the existing track.
    Raises UploadRefused with a message for the person uploading.
    """
    name = PurePosixPath(upload.name or "upload").name
    if upload.size is not None and upload.size > max_upload_bytes():
        raise UploadRefused(_too_big_message(name, upload.size), status=413)
    if not upload.size:
        raise UploadRefused(f"{name} is empty.")
    with local_copy(upload) as path:
        digest = sha256_of(path)
        existing = Track.objects.filter(owner=owner, sha256=digest).first()
        if existing is not None:
            return Intake(existing, created=False)
        check_audio(path, name)
        tags = read_tags_quietly(path)
        track = Track(owner=owner, original_name=name[:255], sha256=digest, size=upload.size,
                      tag_policy=tag_policy, **tags)
        try:
            with transaction.atomic():
                track.file.save(name, upload, save=False)
                track.save()
                enqueue(track.pk)
        except IntegrityError:
            # The same file arrived twice at once; the first one is kept.
            track.file.delete(save=False)
            return Intake(Track.objects.get(owner=owner, sha256=digest), created=False)
    return Intake(track, created=True)


def _too_big_message(name: str, size: int) -> str:
    return (f"{name} is {size / 1024 / 1024:.0f} MB; the limit is "
            f"{settings.GENREWEB_MAX_UPLOAD_MB} MB per file.")


@contextlib.contextmanager
def local_copy(upload: UploadedFile) -> Iterator[Path]:
    """A path on disk holding the upload's bytes (its temporary file where it has one)."""
    if hasattr(upload, "temporary_file_path"):
        yield Path(upload.temporary_file_path())
        return
    suffix = PurePosixPath(upload.name or "").suffix[:10]
    with tempfile.NamedTemporaryFile(suffix=".upload" + suffix) as handle:
        upload.seek(0)
        shutil.copyfileobj(upload, handle)
        handle.flush()
        upload.seek(0)
        yield Path(handle.name)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_audio(path: Path, name: str) -> None:
    """Refuse a file that does not decode as audio: probe it and decode its first block."""
    from classifier.audio import iter_decode, probe

    try:
        probe(path)
        blocks = iter_decode(path)
        try:
            first = next(iter(blocks), None)
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()
    except AudioError as exc:
        raise UploadRefused(f"{name} was refused: {exc}") from exc
    if first is None or len(first) == 0:
        raise UploadRefused(f"{name} was refused: it holds no audio samples.")


def read_tags_quietly(path: Path) -> dict[str, Any]:
    """The Track fields taken from the file's own tags; blank where they cannot be read."""
    from classifier.tags import read_tags

    try:
        info = read_tags(path)
    except TagError as exc:
        log.info("tags of %s not read: %s", path, exc)
        return {}
    return {"title": (info.title or "")[:500], "artist": (info.artist or "")[:500],
            "album": (info.album or "")[:500], "audio_format": info.format,
            "genres_before": list(info.genres), "genres_after": list(info.genres)}


def enqueue(track_id: int) -> None:
    """Queue the analysis once the surrounding transaction commits (never before)."""
    # A lambda, not functools.partial: Django names the callback when logging its failure.
    transaction.on_commit(lambda: _send(track_id), robust=True)


def _send(track_id: int) -> None:
    from classifier.tasks import analyse_track

    analyse_track.delay(track_id)


# ---------------------------------------------------------------- processing


def process_track(track_id: int, task_id: str | None = None) -> str:
    """Analyse one track and write its tags; returns "done", "failed" or "skipped".

    Only a pending track is claimed (or, for the message that claimed it, its own
    processing track again: a redelivery after the worker died). Results are stored only
    while the claim still holds, so a track never ends with two results.
    """
    token = claim_track(track_id, task_id)
    if token is None:
        return "skipped"
    track = Track.objects.filter(pk=track_id).first()
    if track is None:  # deleted since it was claimed
        return "skipped"
    try:
        analysis = run_engine(track, token)
    except EngineError as exc:
        return "failed" if fail_track(track_id, token, str(exc)) else "skipped"
    except Exception as exc:
        if is_transient(exc):
            release_claim(track_id, token)
            raise
        log.exception("analysis of track %s failed", track_id)
        return "failed" if fail_track(track_id, token, explain_crash(exc)) else "skipped"
    return "done" if store_analysis(track, token, analysis) else "skipped"


def claim_track(track_id: int, task_id: str | None = None) -> uuid.UUID | None:
    """Mark the track processing if it is ours to analyse; the claim's token, or None."""
    claimable = Q(status=Status.PENDING)
    if task_id:
        claimable |= Q(status=Status.PROCESSING, task_id=task_id)
    token = uuid.uuid4()
    now = timezone.now()
    claimed = Track.objects.filter(claimable, pk=track_id, attempts__lt=MAX_ATTEMPTS).update(
        status=Status.PROCESSING, stage=Stage.DECODING, progress=0.0, error="",
        task_id=task_id or "", claim_token=token, claimed_at=now, updated_at=now,
        attempts=F("attempts") + 1)
    if claimed == 1:
        return token
    _fail_if_exhausted(track_id, claimable)
    return None


def _fail_if_exhausted(track_id: int, claimable: Q) -> None:
    Track.objects.filter(claimable, pk=track_id, attempts__gte=MAX_ATTEMPTS).update(
        status=Status.FAILED, stage=Stage.FAILED, claim_token=None, updated_at=timezone.now(),
        error=f"The analysis stopped its worker {MAX_ATTEMPTS} times (out of memory, or a "
              "crash while decoding); it was not tried again.")


def _claimed(track_id: int, token: uuid.UUID) -> QuerySet[Track]:
    return Track.objects.filter(pk=track_id, status=Status.PROCESSING, claim_token=token)


def update_claimed(track_id: int, token: uuid.UUID, **fields: Any) -> bool:
    """Update the track only while this claim holds it."""
    return _claimed(track_id, token).update(updated_at=timezone.now(), **fields) == 1


def progress_reporter(track_id: int, token: uuid.UUID) -> Callable[[str, float], None]:
    """An on_progress callback for the engine, writing stage changes and every 10 %."""
    last: dict[str, Any] = {"stage": None, "fraction": 0.0}

    def report(stage: str, fraction: float) -> None:
        moved = fraction - last["fraction"] >= PROGRESS_STEP or fraction >= 1.0
        if stage == last["stage"] and not moved:
            return
        last.update(stage=stage, fraction=fraction)
        stage_value = stage if stage in Stage.values else Stage.ANALYSING
        update_claimed(track_id, token, stage=stage_value, progress=round(fraction, 3))

    return report


def run_engine(track: Track, token: uuid.UUID) -> Any:
    from classifier.analysis import analyse

    return analyse(track.file.path, min_confidence=settings.GENREWEB_MIN_CONFIDENCE,
                   on_progress=progress_reporter(track.pk, token))


def verdict_fields(analysis: Any) -> dict[str, Any]:
    """The Track fields that hold an Analysis."""
    verdict = analysis.to_json()
    verdict.pop("path", None)
    verdict.pop("error", None)
    verdict["probabilities"] = {g: round(p, 4) for g, p in analysis.probabilities.items()}
    verdict["tag_values"] = analysis.tag_values()
    verdict["min_confidence"] = analysis.min_confidence
    top = analysis.genres[0].confidence if analysis.genres else None
    embedding = analysis.embedding
    return {
        "verdict": verdict,
        "timeline": [{"start": round(c.start, 3),
                      "probabilities": {g: round(p, 4) for g, p in c.probabilities.items()}}
                     for c in analysis.timeline],
        "embedding": None if embedding is None else [float(x) for x in embedding],
        "duration": analysis.duration,
        "model_version": analysis.model,
        "primary_genre": analysis.primary or "",
        "confidence": top,
        "uncertain": analysis.uncertain,
    }


def store_analysis(track: Track, token: uuid.UUID, analysis: Any) -> bool:
    """Store the verdict, write the tags with the track's policy, mark it done."""
    fields = verdict_fields(analysis)
    if not update_claimed(track.pk, token, stage=Stage.TAGGING, progress=0.0, **fields):
        return False
    tag_error = ""
    try:
        after, _ = write_track_tags(track, fields["verdict"]["tag_values"], track.tag_policy,
                                    analysis.model)
    except TagError as exc:
        after, tag_error = track.genres_after, f"Genres found, but the tags were not written: {exc}"
    return update_claimed(track.pk, token, status=Status.DONE, stage=Stage.DONE, progress=1.0,
                          genres_after=after, error=tag_error, claim_token=None,
                          analysed_at=timezone.now())


def write_track_tags(track: Track, values: list[str], policy: str, model: str
                     ) -> tuple[list[str], bool]:
    """Write `values` into the stored file with `policy`: the file's genres afterwards, and
    whether the file changed.

    With nothing to write (an uncertain verdict) the file is left alone, whatever the
    policy, so "replace" never empties a file's genres.
    """
    from classifier.tags import read_tags, write_genres

    path = track.file.path
    if not values:
        return list(read_tags(path).genres), False
    result = write_genres(path, values, policy=policy, provenance={"model": model})
    return list(result.after), result.changed


def fail_track(track_id: int, token: uuid.UUID, message: str) -> bool:
    return update_claimed(track_id, token, status=Status.FAILED, stage=Stage.FAILED,
                          error=message[:2000], claim_token=None)


def release_claim(track_id: int, token: uuid.UUID) -> None:
    """Hand the track back to pending (a network error: its task is retried)."""
    with contextlib.suppress(Exception):  # the database may be what is down
        update_claimed(track_id, token, status=Status.PENDING, stage=Stage.QUEUED,
                       claim_token=None, attempts=F("attempts") - 1)


def is_transient(exc: BaseException) -> bool:
    """Errors of the network or database, worth a retry; everything else is final."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError)


def explain_crash(exc: BaseException) -> str:
    from celery.exceptions import SoftTimeLimitExceeded

    if isinstance(exc, SoftTimeLimitExceeded):
        minutes = settings.GENREWEB_TASK_TIME_LIMIT / 60
        return f"The analysis took longer than {minutes:.0f} minutes and was stopped."
    if isinstance(exc, MemoryError):
        return "The analysis ran out of memory."
    return "The analysis failed because of an internal error; try re-analysing the track."


# ---------------------------------------------------------------- library actions


def reanalyse(tracks: QuerySet[Track]) -> list[int]:
    """Queue the tracks for a fresh analysis (not those being analysed right now)."""
    now = timezone.now()
    queued = []
    with transaction.atomic():
        for pk in tracks.exclude(status=Status.PROCESSING).values_list("pk", flat=True):
            updated = Track.objects.filter(pk=pk).exclude(status=Status.PROCESSING).update(
                status=Status.PENDING, stage=Stage.QUEUED, progress=0.0, error="", task_id="",
                claim_token=None, claimed_at=None, attempts=0, updated_at=now)
            if updated:
                enqueue(pk)
                queued.append(pk)
    return queued


@dataclass
class RetagResult:
    written: int = 0  # files whose genres changed
    unchanged: int = 0  # files that already had them (or, with "fill", any genre)
    skipped: int = 0  # not analysed yet, or uncertain
    errors: list[str] | None = None


def retag(tracks: QuerySet[Track], policy: str) -> RetagResult:
    """Write each analysed track's genres into its file with `policy`."""
    if policy not in TagPolicy.values:
        raise ValueError(f"unknown tag policy {policy!r}")
    result = RetagResult(errors=[])
    for track in tracks.filter(status=Status.DONE):
        if not track.tag_values:
            result.skipped += 1
            continue
        try:
            after, changed = write_track_tags(track, track.tag_values, policy,
                                              track.model_version)
        except TagError as exc:
            result.errors.append(f"{track.display_title}: {exc}")
            continue
        Track.objects.filter(pk=track.pk).update(genres_after=after, tag_policy=policy,
                                                 updated_at=timezone.now())
        result.written += changed
        result.unchanged += not changed
    result.skipped += tracks.exclude(status=Status.DONE).count()
    return result


def delete_tracks(tracks: QuerySet[Track]) -> int:
    """Delete the tracks and their stored files."""
    count = 0
    for track in tracks:
        track.file.delete(save=False)
        _remove_empty_parents(Path(track.file.path).parent if track.file.name else None)
        track.delete()
        count += 1
    return count


def _remove_empty_parents(folder: Path | None) -> None:
    root = Path(settings.MEDIA_ROOT).resolve()
    while folder is not None and folder.resolve() != root and root in folder.resolve().parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def requeue_stale(now: Any = None) -> list[int]:
    """Queue again tracks whose worker vanished, and pending tracks whose message was lost.

    A track processing for longer than GENREWEB_STALE_AFTER has lost its worker (tasks are
    killed well before). A pending track untouched that long never reached a worker
    (the broker was down when it was queued). A duplicate message is harmless: only
    one can claim the track.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GENREWEB_STALE_AFTER)
    requeued = []
    with transaction.atomic():
        stuck = Track.objects.filter(status=Status.PROCESSING, claimed_at__lt=cutoff)
        for pk, token in stuck.values_list("pk", "claim_token"):
            if Track.objects.filter(pk=pk, status=Status.PROCESSING, claim_token=token).update(
                    status=Status.PENDING, stage=Stage.QUEUED, progress=0.0, task_id="",
                    claim_token=None, claimed_at=None, updated_at=now):
                enqueue(pk)
                requeued.append(pk)
        forgotten = Track.objects.filter(status=Status.PENDING, updated_at__lt=cutoff)
        for pk in forgotten.values_list("pk", flat=True):
            Track.objects.filter(pk=pk, status=Status.PENDING).update(updated_at=now)
            enqueue(pk)
            requeued.append(pk)
    if requeued:
        log.warning("queued %d stale tracks again: %s", len(requeued), requeued)
    return requeued


# ---------------------------------------------------------------- downloads


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
