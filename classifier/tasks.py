"""Celery tasks: thin wrappers around classifier.pipeline, which holds the logic."""
from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError

from classifier import pipeline

log = logging.getLogger(__name__)

# Only these are retried (with backoff); an engine error is final and recorded on the track.
NETWORK_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True,
             autoretry_for=NETWORK_ERRORS, retry_backoff=5, retry_backoff_max=300,
             retry_jitter=True, max_retries=8)
def analyse_track(self, track_id: int) -> str:
    """Analyse one track, given its id (see pipeline.process_track)."""
    return pipeline.process_track(track_id, task_id=self.request.id)


@shared_task(acks_late=True, autoretry_for=NETWORK_ERRORS, retry_backoff=5, max_retries=3)
def requeue_stale_tracks() -> list[int]:
    """Queue again tracks stuck in processing or pending (run by celery beat)."""
    return pipeline.requeue_stale()


@worker_ready.connect
def _sweep_on_start(**kwargs: object) -> None:
    # A worker that starts after a crash picks up what the crash left behind.
    requeue_stale_tracks.delay()
