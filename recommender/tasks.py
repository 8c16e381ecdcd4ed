"""Celery tasks of the catalog build: thin wrappers around recommender.services.

The only module of the app that talks to Celery: the tasks, and the helpers that queue them
once the surrounding transaction commits. Task names are explicit and stable, so moving code
never strands a message in flight.

Only network failures are retried (with backoff, counted on the track, bounded by
RECOMMENDER_MAX_ATTEMPTS); any other failure is final and recorded on the track.
"""

from __future__ import annotations

from collections.abc import Iterable

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError, transaction

from recommender import conf
from recommender.services import analysis, curation, progress, sampling, similar
from recommender.services.claims import RetryLater

DATABASE_ERRORS = (OperationalError, InterfaceError)

SAMPLE_CATALOG_TRACK = "recommender.sample_catalog_track"
ANALYSE_CATALOG_TRACK = "recommender.analyse_catalog_track"
REFETCH_CATALOG_TRACK = "recommender.refetch_catalog_track"
REFRESH_LIBRARY_INDEXES = "recommender.refresh_library_indexes"


@shared_task(
    bind=True,
    name=SAMPLE_CATALOG_TRACK,
    acks_late=True,
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def sample_catalog_track(self, track_id: int) -> str:
    """Search, cut and store a catalog track's sample, then queue its analysis."""
    try:
        return _sample(track_id)
    except RetryLater as exc:
        # The track counts its attempts and fails itself past the limit; Celery's own
        # limit only has to stay out of the way.
        raise self.retry(countdown=exc.countdown, max_retries=conf.max_attempts() + 1) from exc


@shared_task(
    bind=True,
    name=ANALYSE_CATALOG_TRACK,
    acks_late=True,
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def analyse_catalog_track(self, track_id: int) -> str:
    """The engine's verdict and embedding for a sampled catalog track."""
    return analysis.analyse_track(track_id)


@shared_task(
    bind=True,
    name=REFETCH_CATALOG_TRACK,
    acks_late=True,
    autoretry_for=DATABASE_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def refetch_catalog_track(self, track_id: int) -> str:
    """An admin's re-fetch: Spotify metadata again (best effort), then a new sample."""
    curation.refresh_metadata(track_id)
    try:
        return _sample(track_id)
    except RetryLater as exc:
        # The metadata is fresh now; the retry only needs the sample.
        sample_catalog_track.apply_async((track_id,), countdown=exc.countdown)
        return "retrying"


def _sample(track_id: int) -> str:
    outcome = sampling.sample_track(track_id)
    if outcome == sampling.SAMPLED:
        queue_analysis([track_id])
    return outcome


def queue_sampling(track_ids: Iterable[int]) -> None:
    """Queue each track's sampling once the surrounding transaction commits."""
    _queue_on_commit(sample_catalog_track, track_ids)


def queue_analysis(track_ids: Iterable[int]) -> None:
    """Queue each sampled track's analysis once the surrounding transaction commits."""
    _queue_on_commit(analyse_catalog_track, track_ids)


@shared_task(name=REFRESH_LIBRARY_INDEXES, autoretry_for=DATABASE_ERRORS, max_retries=3)
def refresh_library_indexes() -> list[int]:
    """Bring every user's "songs like this" index up to date (run by celery beat)."""
    return similar.refresh_library_indexes()


def queue_refetch(track_ids: Iterable[int]) -> None:
    """Queue each track's re-fetch once the surrounding transaction commits."""
    _queue_on_commit(refetch_catalog_track, track_ids)


def requeue_unfinished() -> dict[str, int]:
    """Queue again every pending or sampled track nobody holds; how many of each."""
    unfinished = progress.unfinished_tracks()
    with transaction.atomic():
        queue_sampling(unfinished.to_sample)
        queue_analysis(unfinished.to_analyse)
    return unfinished.counts()


def _queue_on_commit(task: Task, track_ids: Iterable[int]) -> None:
    for track_id in track_ids:
        # A lambda, not functools.partial: Django names the callback when logging its failure.
        transaction.on_commit(lambda pk=track_id: task.delay(pk), robust=True)
