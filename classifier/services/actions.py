"""What a user does to tracks of the library: re-analyse, re-tag, delete."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from classifier.engine.errors import TagError
from classifier.engine.files import remove_stale_files, temporaries_of
from classifier.models import Stage, Status, TagPolicy, Track
from classifier.services.processing import not_live, write_track_tags


def reanalyse(tracks: QuerySet[Track]) -> list[int]:
    """Mark the tracks for a fresh analysis (not those a live worker is analysing right now;
    a track whose worker died, its claim silent, is taken back): the ones to queue."""
    now = timezone.now()
    queued = []
    with transaction.atomic():
        for pk in tracks.filter(not_live(now)).order_by("pk").values_list("pk", flat=True):
            updated = Track.objects.filter(not_live(now), pk=pk).update(
                status=Status.PENDING,
                stage=Stage.QUEUED,
                progress=0.0,
                error="",
                task_id="",
                claim_token=None,
                claimed_at=None,
                heartbeat_at=None,
                attempts=0,
                updated_at=now,
            )
            if updated:
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
        if not track.tag_values or track.in_folder:  # folder files are read-only
            result.skipped += 1
            continue
        try:
            after, changed = write_track_tags(track, track.tag_values, policy, track.model_version)
        except TagError as exc:
            result.errors.append(f"{track.display_title}: {exc}")
            continue
        Track.objects.filter(pk=track.pk).update(
            genres_after=after, tag_policy=policy, updated_at=timezone.now()
        )
        result.written += changed
        result.unchanged += not changed
    result.skipped += tracks.exclude(status=Status.DONE).count()
    return result


def delete_tracks(tracks: QuerySet[Track]) -> int:
    """Delete the tracks, their stored files and the temporary copies a killed tag write
    left beside them (not one a live writer holds)."""
    count = 0
    for track in tracks:
        folder = None
        if track.file.name:
            stored = Path(track.file.path)
            folder = stored.parent
            remove_stale_files(folder, temporaries_of(stored), older_than=0)
        track.file.delete(save=False)
        _remove_empty_parents(folder)
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
