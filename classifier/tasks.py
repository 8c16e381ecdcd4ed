"""Celery tasks of the library: thin wrappers around classifier.services.

The only module of the app that talks to Celery. Task names are explicit and stable, so
moving code never strands a message in flight or the beat schedule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.db import transaction

from classifier.services import cleanup, evidence, folders, processing, tagchanges

log = logging.getLogger(__name__)

ANALYSE_TRACK = "classifier.analyse_track"
REQUEUE_STALE_TRACKS = "classifier.requeue_stale_tracks"
REMOVE_STALE_TEMPORARIES = "classifier.remove_stale_temporaries"
REFUSE_TRACKS = "classifier.refuse_tracks"
SCAN_LIBRARY = "classifier.scan_library"
RESCAN_LIBRARIES = "classifier.rescan_libraries"
RUN_TAG_BATCH = "classifier.run_tag_batch"


@shared_task(
    bind=True,
    name=ANALYSE_TRACK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=processing.TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def analyse_track(self, track_id: int) -> str:  # type: ignore[no-untyped-def]
    """Analyse one track, given its id (see processing.process_track); then its album's and
    artist's other tracks are fused again with it."""
    outcome = processing.process_track(
        track_id, task_id=self.request.id, time_limits=(SoftTimeLimitExceeded,)
    )
    if outcome == "done":
        queue_refusing(evidence.mates_to_refuse(track_id))
    return outcome


@shared_task(
    name=REFUSE_TRACKS,
    acks_late=True,
    autoretry_for=processing.TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def refuse_tracks(track_ids: list[int]) -> int:
    """Fuse tracks again from their stored audio verdicts (no audio analysed)."""
    return processing.refuse_tracks(track_ids)


@shared_task(
    name=REQUEUE_STALE_TRACKS,
    acks_late=True,
    autoretry_for=processing.TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=3,
)
def requeue_stale_tracks() -> list[int]:
    """Queue again tracks stuck in processing or pending, and tag batches whose worker died
    (run by celery beat)."""
    track_ids = processing.requeue_stale()
    queue_analyses(track_ids)
    queue_tag_batches(tagchanges.stale_batches())
    return track_ids


@shared_task(name=REMOVE_STALE_TEMPORARIES)
def remove_stale_temporaries() -> int:
    """Remove temporary files killed processes left (run by celery beat); how many."""
    return len(cleanup.remove_stale_temporaries())


@shared_task(
    name=SCAN_LIBRARY,
    acks_late=True,
    autoretry_for=processing.TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=3,
)
def scan_library(folder_id: int) -> int:
    """Scan one library folder (see folders.scan); each batch's analyses are queued once the
    batch is committed. How many analyses it queued."""
    queued = 0
    for track_ids in folders.scan(folder_id):
        queue_analyses(track_ids)
        queued += len(track_ids)
    return queued


@shared_task(name=RESCAN_LIBRARIES)
def rescan_libraries() -> list[int]:
    """Queue a scan of every library folder not being scanned (run by celery beat)."""
    folder_ids = folders.due_for_rescan()
    queue_scans(folder_ids)
    return folder_ids


@shared_task(
    name=RUN_TAG_BATCH,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=processing.TRANSIENT_ERRORS,
    retry_backoff=5,
    max_retries=3,
)
def run_tag_batch(batch_id: int) -> bool:
    """Write a batch of previewed genre changes, or undo earlier ones (tagchanges.run_batch),
    a slice at a time: the rest is queued again. Whether any was left."""
    more = tagchanges.run_batch(batch_id)
    if more:
        queue_tag_batches([batch_id])
    return more


def queue_tag_batches(batch_ids: Iterable[int]) -> None:
    """Queue each tag batch once the surrounding transaction commits."""
    for batch_id in batch_ids:
        transaction.on_commit(lambda pk=batch_id: run_tag_batch.delay(pk), robust=True)


def queue_scans(folder_ids: Iterable[int]) -> None:
    """Queue each folder's scan once the surrounding transaction commits."""
    for folder_id in folder_ids:
        transaction.on_commit(lambda pk=folder_id: scan_library.delay(pk), robust=True)


def queue_analyses(track_ids: Iterable[int]) -> None:
    """Queue each track's analysis once the surrounding transaction commits (never before)."""
    for track_id in track_ids:
        # A lambda, not functools.partial: Django names the callback when logging its failure.
        transaction.on_commit(lambda pk=track_id: analyse_track.delay(pk), robust=True)


def queue_refusing(track_ids: list[int]) -> None:
    """One task for all the tracks to fuse again, once the transaction commits."""
    if track_ids:
        ids = list(track_ids)
        transaction.on_commit(lambda: refuse_tracks.delay(ids), robust=True)


@worker_ready.connect
def _sweep_on_start(**kwargs: object) -> None:
    # A worker that starts after a crash picks up what the crash left behind.
    requeue_stale_tracks.delay()
    remove_stale_temporaries.delay()
