"""Genre tag changes previewed, applied in the background and undone.

A preview compares, for every analysed track of a selection, the genres its file holds with
what the chosen policy would leave there. Applying one records a TagBatch and a TagWrite per
file that changes; the batch's task writes them one by one, each only where the file still
holds what the preview showed, recording the genre fields it replaced
(engine.tagrestore) and the file's hash afterwards. An undo puts those fields back, latest
write first, and refuses a file whose hash is no longer the one Genreweb left.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from classifier.engine import tagrestore
from classifier.engine.errors import TagError
from classifier.engine.files import sha256_of
from classifier.engine.filetags import plan_genres, read_tags, write_genres
from classifier.models import (
    OutsideFolder,
    Status,
    TagBatch,
    TagBatchKind,
    TagBatchState,
    TagPolicy,
    TagWrite,
    Track,
    WriteStatus,
    display_title,
)

PREVIEW_ROWS = 500
# How long one task works on a batch before queueing the rest (well inside the time limit).
SLICE_SECONDS = 120.0


# ---------------------------------------------------------------- preview


@dataclass(frozen=True)
class Change:
    track_id: int
    title: str
    source: str  # "upload" or the folder file's relative path
    before: list[str]
    after: list[str]

    @property
    def kind(self) -> str:
        return "gets" if not self.before else "changes"


@dataclass
class Preview:
    policy: str
    gets: int = 0  # files that have no genre and get one
    changes: int = 0  # files whose genres change
    unchanged: int = 0  # analysed files that stay as they are (uncertain ones included)
    not_analysed: int = 0
    rows: list[Change] = field(default_factory=list)  # the first PREVIEW_ROWS changes

    @property
    def total_changes(self) -> int:
        return self.gets + self.changes


def preview(tracks: QuerySet[Track], policy: str) -> Preview:
    """What writing each analysed track's genres with `policy` would change."""
    if policy not in TagPolicy.values:
        raise ValueError(f"unknown tag policy {policy!r}")
    result = Preview(policy=policy)
    result.not_analysed = tracks.exclude(status=Status.DONE).count()
    for change in _changes(tracks, policy):
        if change is None:
            result.unchanged += 1
            continue
        result.gets += not change.before
        result.changes += bool(change.before)
        if len(result.rows) < PREVIEW_ROWS:
            result.rows.append(change)
    return result


def _changes(tracks: QuerySet[Track], policy: str) -> Any:
    """A Change, or None where the file stays as it is, for every analysed track."""
    rows = (
        tracks.filter(status=Status.DONE)
        .order_by("pk")
        .values_list(
            "pk", "title", "original_name", "relative_path", "genres_after", "verdict__tag_values"
        )
    )
    for pk, title, name, relative, before, values in rows.iterator(chunk_size=2000):
        after = plan_genres(before or [], values, policy) if values else list(before or [])
        if after == (before or []):
            yield None
        else:
            yield Change(pk, display_title(title, name), relative or "upload", before, after)


def start_apply(owner: Any, tracks: QuerySet[Track], policy: str, description: str) -> list[int]:
    """Record a batch writing the preview's changes: the batches to queue (none where nothing
    would change)."""
    changes = [c for c in _changes(tracks, policy) if c is not None]
    if not changes:
        return []
    with transaction.atomic():
        batch = TagBatch.objects.create(
            owner=owner,
            kind=TagBatchKind.APPLY,
            policy=policy,
            description=description,
            total=len(changes),
        )
        TagWrite.objects.bulk_create(
            [
                TagWrite(
                    batch=batch, track_id=c.track_id, genres_before=c.before, genres_after=c.after
                )
                for c in changes
            ],
            batch_size=1000,
        )
    return [batch.pk]


# ---------------------------------------------------------------- undo requests


def start_undo(owner: Any, writes: QuerySet[TagWrite], description: str) -> list[int]:
    """Record a batch undoing `writes` (those of `owner` still in place): the batches to
    queue (none where nothing is left to undo)."""
    live = writes.filter(batch__owner=owner, status=WriteStatus.WRITTEN)
    with transaction.atomic():
        ids = list(live.select_for_update().values_list("pk", flat=True))
        if not ids:
            return []
        batch = TagBatch.objects.create(
            owner=owner, kind=TagBatchKind.UNDO, description=description, total=len(ids)
        )
        TagWrite.objects.filter(pk__in=ids).update(undo_batch=batch, undo_error="")
    return [batch.pk]


def writes_since(owner: Any, since: datetime) -> QuerySet[TagWrite]:
    return TagWrite.objects.filter(batch__owner=owner, written_at__gte=since)


# ---------------------------------------------------------------- the batch's work


def stale_after() -> timedelta:
    return timedelta(seconds=settings.GENREWEB_HEARTBEAT_TIMEOUT)


def claim(batch_id: int) -> uuid.UUID | None:
    """Take the batch with a conditional update (a running one only once its worker has been
    silent for GENREWEB_HEARTBEAT_TIMEOUT): the claim's token, or None."""
    now = timezone.now()
    token = uuid.uuid4()
    free = Q(state=TagBatchState.QUEUED) | Q(
        state=TagBatchState.RUNNING, heartbeat_at__lt=now - stale_after()
    )
    claimed = TagBatch.objects.filter(free, pk=batch_id).update(
        state=TagBatchState.RUNNING, claim_token=token, heartbeat_at=now
    )
    return token if claimed else None


def stale_batches() -> list[int]:
    """Batches to queue again: running with a silent worker, or queued so long ago that
    their message must be lost (the periodic sweep queues them; a claim takes each once)."""
    now = timezone.now()
    long_ago = now - timedelta(seconds=settings.GENREWEB_STALE_AFTER)
    silent = Q(state=TagBatchState.RUNNING, heartbeat_at__lt=now - stale_after())
    forgotten = Q(state=TagBatchState.QUEUED) & (
        Q(heartbeat_at__lt=long_ago) | Q(heartbeat_at=None, created_at__lt=long_ago)
    )
    return list(TagBatch.objects.filter(silent | forgotten).values_list("pk", flat=True))


def run_batch(batch_id: int, slice_seconds: float | None = None) -> bool:
    """Work through a claimed batch's files for about `slice_seconds` (SLICE_SECONDS), each
    file that fails recorded with its reason as the batch goes on: whether files are left
    (the batch is then queued again: a library's batch outlasts a task's time limit)."""
    token = claim(batch_id)
    if token is None:
        return False
    batch = TagBatch.objects.get(pk=batch_id)
    step, pending = _work(batch)
    ends = time.monotonic() + (SLICE_SECONDS if slice_seconds is None else slice_seconds)
    try:
        for write in pending.iterator(chunk_size=200):
            step(write)
            _beat(batch, token)
            if time.monotonic() > ends:
                return _release(batch, token)
    except Exception as exc:
        _finish(batch, token, TagBatchState.FAILED, f"stopped: {exc}")
        raise
    _finish(batch, token, TagBatchState.DONE, "")
    return False


def _release(batch: TagBatch, token: uuid.UUID) -> bool:
    released = TagBatch.objects.filter(pk=batch.pk, claim_token=token).update(
        state=TagBatchState.QUEUED, claim_token=None
    )
    return bool(released)


def _work(batch: TagBatch) -> tuple[Callable[[TagWrite], bool], QuerySet[TagWrite]]:
    if batch.kind == TagBatchKind.APPLY:
        pending = batch.writes.filter(status=WriteStatus.PLANNED).order_by("pk")
        return _apply_one, pending.select_related("track__folder")
    undoing = batch.undoes.filter(status=WriteStatus.WRITTEN, undo_error="")
    return _undo_one, undoing.select_related("track__folder").order_by("-written_at", "-pk")


def _beat(batch: TagBatch, token: uuid.UUID) -> None:
    TagBatch.objects.filter(pk=batch.pk, claim_token=token).update(
        processed=F("processed") + 1, heartbeat_at=timezone.now()
    )


def _finish(batch: TagBatch, token: uuid.UUID, state: str, error: str) -> None:
    TagBatch.objects.filter(pk=batch.pk, claim_token=token).update(
        state=state, error=error, finished_at=timezone.now(), claim_token=None
    )


# ---------------------------------------------------------------- one file


def _apply_one(write: TagWrite) -> bool:
    try:
        path = write.track.audio_path
        snapshot = write.replaced or tagrestore.take(path)
        now = read_tags(path).genres
    except (TagError, OutsideFolder, OSError) as exc:
        return _record(write, status=WriteStatus.FAILED, error=_reason(exc))
    if write.replaced is not None and now == write.genres_after:
        # Written before its worker died, and nothing else since: done.
        return _written(write, path, snapshot)
    if now != write.genres_before:
        return _record(
            write,
            status=WriteStatus.SKIPPED,
            error=f"the file's genres are now {now or 'none'}, not the previewed "
            f"{write.genres_before or 'none'}: left as it is",
        )
    TagWrite.objects.filter(pk=write.pk).update(replaced=snapshot)
    try:
        write_genres(
            path,
            write.genres_after,
            "replace",
            id3_version=None,
            provenance={"model": write.track.model_version or "genreweb"},
        )
    except TagError as exc:
        return _record(write, status=WriteStatus.FAILED, error=str(exc), replaced=None)
    return _written(write, path, snapshot)


def _written(write: TagWrite, path: str, snapshot: dict[str, Any]) -> bool:
    digest = _keep_track_current(write.track, path, write.genres_after)
    return _record(
        write,
        status=WriteStatus.WRITTEN,
        replaced=snapshot,
        sha256_after=digest,
        written_at=timezone.now(),
        error="",
    )


def _undo_one(write: TagWrite) -> bool:
    later = TagWrite.objects.filter(
        track_id=write.track_id, status=WriteStatus.WRITTEN, written_at__gt=write.written_at
    ).exists()
    if later:
        return _undo_refused(write, "a later change to this file is still in place: undo it first")
    try:
        path = write.track.audio_path
        if sha256_of(path) != _last_hash(write):
            return _undo_refused(
                write, "the file changed on disk since Genreweb wrote it: not undone"
            )
        assert write.replaced is not None  # a written write recorded what it replaced
        tagrestore.restore(path, write.replaced)
        genres = read_tags(path).genres
    except (TagError, OutsideFolder, OSError) as exc:
        return _undo_refused(write, _reason(exc))
    digest = _keep_track_current(write.track, path, genres)
    return _record(write, status=WriteStatus.UNDONE, sha256_undone=digest, undone_at=timezone.now())


def _last_hash(write: TagWrite) -> str:
    """The file's hash after the last thing Genreweb did to it (a write or an undo)."""
    events: list[tuple[datetime, str]] = []
    for written_at, after, undone_at, undone in TagWrite.objects.filter(
        track_id=write.track_id
    ).values_list("written_at", "sha256_after", "undone_at", "sha256_undone"):
        if written_at is not None:
            events.append((written_at, after))
        if undone_at is not None:
            events.append((undone_at, undone))
    return max(events)[1]


def _reason(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the file is no longer there"
    if isinstance(exc, OSError):
        return f"the file cannot be read ({exc.strerror or exc})"
    return str(exc)


def _undo_refused(write: TagWrite, reason: str) -> bool:
    TagWrite.objects.filter(pk=write.pk).update(undo_error=reason)
    return False


def _record(write: TagWrite, **fields: Any) -> bool:
    TagWrite.objects.filter(pk=write.pk).update(**fields)
    return fields["status"] in (WriteStatus.WRITTEN, WriteStatus.UNDONE)


def _keep_track_current(track: Track, path: str, genres: list[str]) -> str:
    """Record the file as it now is: its genres, and for a folder file its size, time and
    hash, so the next scan sees it unchanged rather than analysing it again. Its hash."""
    digest = sha256_of(path)
    fields: dict[str, Any] = {"genres_after": genres, "updated_at": timezone.now()}
    if track.in_folder:
        stat = os.stat(path)
        fields.update(sha256=digest, size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    Track.objects.filter(pk=track.pk).update(**fields)
    return digest


# ---------------------------------------------------------------- what the pages show


def batch_counts(batch: TagBatch) -> dict[str, int]:
    """How the batch's files stand: by write status (apply) or undone/refused (undo)."""
    if batch.kind == TagBatchKind.APPLY:
        # One grouped query: the batch page polls this every second or two.
        found = dict(batch.writes.order_by().values_list("status").annotate(n=Count("pk")))
        return {s.value: found.get(s.value, 0) for s in WriteStatus}
    return batch.undoes.aggregate(
        undone=Count("pk", filter=Q(status=WriteStatus.UNDONE)),
        refused=Count("pk", filter=~Q(undo_error="")),
    )
