"""Model versions: which head is active, promotion, roll-back and what is out of date."""

from __future__ import annotations

import logging
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from classifier.curation.models import ModelVersion, Promotion
from classifier.curation.services import CurationError
from classifier.engine.errors import ModelError
from classifier.engine.head import load_head
from classifier.engine.weights import model_version
from classifier.models import Status, Track
from classifier.services import actions
from classifier.services.active_model import head_path

log = logging.getLogger(__name__)


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def active_model_string() -> str | None:
    """The model string verdicts made now record (Analysis.model); None without any head."""
    version = active_version()
    if version is not None:
        return version.model
    try:
        _, _, head_version = load_head(head_path())
    except ModelError:
        return None
    return model_version(head_version)


def promote(
    version: ModelVersion | None, user=None, *, rollback: bool = False
) -> ModelVersion | None:
    """Make `version` the active head (None: back to the bundled head) for every process.

    Workers and the web app ask for the active head once per track, so they switch at their
    next track. The caller then has the samples' verdicts recomputed with the new head
    (curation.tasks.refresh_verdicts_after_promotion).
    """
    with transaction.atomic():
        # Lock the active row so two promotions in flight cannot both end up active.
        list(ModelVersion.objects.select_for_update().filter(is_active=True))
        ModelVersion.objects.filter(is_active=True).update(is_active=False)
        if version is not None:
            if not Path(version.head.path).exists():
                raise CurationError(f"the head file of {version} is missing: {version.head.name}")
            version.is_active = True
            version.promoted_at = timezone.now()
            version.promoted_by = user if getattr(user, "pk", None) else None
            version.save(update_fields=["is_active", "promoted_at", "promoted_by"])
        Promotion.objects.create(
            version=version, rollback=rollback, by=user if getattr(user, "pk", None) else None
        )
    log.info("active genre head is now %s", version or "the bundled head")
    return version


def roll_back(user=None) -> ModelVersion | None:
    """Re-activate the head that was active before the current one; returns it (None: bundled).

    Promotions form a stack: each roll-back steps one further back, down to the bundled head.
    """
    if active_version() is None:
        return None  # the bundled head is active: nothing to roll back
    stack = promotion_stack()
    if stack:
        stack.pop()  # the active version
    previous = ModelVersion.objects.filter(pk=stack[-1]).first() if stack and stack[-1] else None
    return promote(previous, user, rollback=True)


def promotion_stack() -> list[int | None]:
    """Version ids (None: the bundled head) in the order they became active, undone ones popped."""
    stack: list[int | None] = []
    for event in Promotion.objects.order_by("at", "id"):
        if event.rollback:
            if stack:
                stack.pop()
        else:
            stack.append(event.version_id)
    return stack


def tracks_from_older_versions(user=None):
    """Analysed tracks whose verdict was made by another model than the active one.

    `user`: only that user's tracks (the dashboard); None: everyone's (the admin).
    """
    current = active_model_string()
    # Only finished tracks: one pending or processing is already on its way to a new verdict.
    tracks = Track.objects.filter(status=Status.DONE).exclude(model_version="")
    if current is not None:
        tracks = tracks.exclude(model_version=current)
    if user is not None:
        tracks = tracks.filter(owner=user)
    return tracks


def reanalyse_older_tracks(user=None) -> list[int]:
    """Mark every track of tracks_from_older_versions(user) for a fresh analysis: the tracks
    to queue."""
    return actions.reanalyse(tracks_from_older_versions(user))
