"""Celery tasks of the catalog build: thin wrappers around recommender.catalog.

Only network failures are retried (with backoff, counted on the track, bounded by
RECOMMENDER_MAX_ATTEMPTS); any other failure is final and recorded on the track.
"""
from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from recommender import catalog, conf

DATABASE_ERRORS = (OperationalError, InterfaceError)


@shared_task(bind=True, name="recommender.sample_catalog_track", acks_late=True,
             autoretry_for=DATABASE_ERRORS, retry_backoff=5, max_retries=5)
def sample_catalog_track(self, track_id: int) -> str:
    """Search, cut and store a catalog track's sample (see catalog.sample_track)."""
    try:
        return catalog.sample_track(track_id)
    except catalog.RetryLater as exc:
        # The track counts its attempts and fails itself past the limit; Celery's own
        # limit only has to stay out of the way.
        raise self.retry(countdown=exc.countdown, max_retries=conf.max_attempts() + 1) from exc


@shared_task(bind=True, name="recommender.analyse_catalog_track", acks_late=True,
             autoretry_for=DATABASE_ERRORS, retry_backoff=5, max_retries=5)
def analyse_catalog_track(self, track_id: int) -> str:
    """The engine's verdict and embedding for a sampled catalog track."""
    return catalog.analyse_track(track_id)


@shared_task(bind=True, name="recommender.refetch_catalog_track", acks_late=True,
             autoretry_for=DATABASE_ERRORS, retry_backoff=5, max_retries=5)
def refetch_catalog_track(self, track_id: int) -> str:
    """An admin's re-fetch: Spotify metadata again (best effort), then a new sample."""
    catalog.refresh_metadata(track_id)
    try:
        return catalog.sample_track(track_id)
    except catalog.RetryLater as exc:
        # The metadata is fresh now; the retry only needs the sample.
        sample_catalog_track.apply_async((track_id,), countdown=exc.countdown)
        return "retrying"
