"""Claims on catalog tracks: which worker may run a step, and what happens when it fails.

Each step claims its track first with a conditional UPDATE on its status (Funkwhale-style),
so two workers never both sample or analyse the same track, and a step whose worker died is
claimed again once its lease (RECOMMENDER_CLAIM_LEASE) runs out.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from recommender import conf
from recommender.models import CatalogTrack, Status

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """A network failure: the step gave its claim back and should run again after `countdown`."""

    def __init__(self, message: str, countdown: float) -> None:
        super().__init__(message)
        self.countdown = countdown


def claimable(status: str) -> Q:
    stale = timezone.now() - timedelta(seconds=conf.claim_lease())
    return Q(status=status) & (Q(claim_token__isnull=True) | Q(claimed_at__lt=stale))


def claim(track_id: int, status: str) -> uuid.UUID | None:
    """Take the track for one step if it is in `status` and nobody holds it; None otherwise."""
    token = uuid.uuid4()
    won = CatalogTrack.objects.filter(claimable(status), pk=track_id).update(
        claim_token=token, claimed_at=timezone.now(), attempts=F("attempts") + 1
    )
    return token if won else None


def claimed(track_id: int, token: uuid.UUID) -> QuerySet[CatalogTrack]:
    return CatalogTrack.objects.filter(pk=track_id, claim_token=token)


def release(track_id: int, token: uuid.UUID, reason: str) -> None:
    claimed(track_id, token).update(
        claim_token=None, claimed_at=None, failure_reason=f"will retry: {reason}"[:2000]
    )


def fail(track_id: int, token: uuid.UUID, reason: str) -> bool:
    log.info("catalog track %s failed: %s", track_id, reason)
    return bool(
        claimed(track_id, token).update(
            status=Status.FAILED, failure_reason=reason[:2000], claim_token=None, claimed_at=None
        )
    )


def retry_countdown(attempts: int) -> float:
    return min(float(conf.retry_backoff()) * 2 ** max(0, attempts - 1), 3600.0)


def network_failure(track: CatalogTrack, token: uuid.UUID, exc: Exception) -> str:
    """Fail the track past RECOMMENDER_MAX_ATTEMPTS; else give the claim back, RetryLater."""
    attempts = track.attempts
    if attempts >= conf.max_attempts():
        fail(track.pk, token, f"network kept failing ({attempts} attempts): {exc}")
        return "failed"
    release(track.pk, token, str(exc))
    raise RetryLater(str(exc), retry_countdown(attempts)) from exc
