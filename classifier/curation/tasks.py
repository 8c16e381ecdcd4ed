"""Celery tasks of the curation app: thin wrappers around the plain functions in services/."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


# A run embeds every new sample before it trains: far longer than one track's analysis.
TRAINING_TIME_LIMIT = getattr(settings, "GENREWEB_TRAINING_TIME_LIMIT", 6 * 3600)


@shared_task(
    bind=True,
    acks_late=True,
    name="curation.train",
    soft_time_limit=TRAINING_TIME_LIMIT,
    time_limit=TRAINING_TIME_LIMIT + 60,
)
def train_run(self, run_id: int) -> str:
    from classifier.curation.services.training import run_training

    run = run_training(run_id)
    return "claimed elsewhere" if run is None else run.status


@shared_task(
    bind=True,
    acks_late=True,
    name="curation.refresh_verdicts",
    soft_time_limit=TRAINING_TIME_LIMIT,
    time_limit=TRAINING_TIME_LIMIT + 60,
)
def refresh_verdicts_task(
    self, sample_ids: list[int] | None = None, embed_missing: bool = True
) -> int:
    """The active model's verdict on the given samples (None: every sample already analysed)."""
    from classifier.curation.models import Sample
    from classifier.curation.services.verdicts import refresh_verdicts

    samples = Sample.objects.prefetch_related("genres").order_by("pk")
    if sample_ids is not None:
        samples = samples.filter(pk__in=sample_ids)
    return refresh_verdicts(samples, embed_missing=embed_missing and sample_ids is not None)


def start_run(run) -> None:
    """Hand a pending run to a worker once its row is committed; a dead broker fails the run."""

    def send() -> None:
        from classifier.curation.models import TrainingRun

        try:
            result = train_run.delay(run.pk)
        except Exception as exc:
            log.exception("could not queue training run %s", run.pk)
            TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.PENDING).update(
                status=TrainingRun.Status.FAILED, error=f"could not queue the run: {exc}"
            )
        else:
            TrainingRun.objects.filter(pk=run.pk).update(task_id=result.id or "")

    transaction.on_commit(send)


def refresh_verdicts_after_promotion() -> None:
    """Once a promotion commits, have every sample judged again by the new active head."""
    transaction.on_commit(lambda: queue_verdict_refresh(None))


def queue_verdict_refresh(sample_ids: list[int] | None) -> bool:
    """Ask a worker for verdicts; False (and logged) when the broker cannot be reached."""
    try:
        refresh_verdicts_task.delay(sample_ids)
    except Exception:
        log.exception("could not queue a verdict refresh")
        return False
    return True
