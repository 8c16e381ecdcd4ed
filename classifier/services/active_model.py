"""Which model is active: the one place that hands the engine its configuration.

The head staff promoted in the admin wins; then GENREWEB_HEAD_PATH; then the bundled head.
Asked once per analysed track, so a promotion reaches every running worker and web process
at its next track: one indexed query, and engines are cached per configuration, so a head
file is only loaded again when the answer changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError

from classifier.engine.head import HeadInfo, read_head_info
from classifier.engine.registry import DEFAULT_HEAD, NOVELTY_MODEL
from classifier.engine.runner import Engine, EngineConfig, get_engine

log = logging.getLogger(__name__)


def head_path() -> Path:
    """The genre head every analysis uses now."""
    promoted = promoted_head_path()
    if promoted is not None:
        return promoted
    return Path(settings.GENREWEB_HEAD_PATH or DEFAULT_HEAD)


def promoted_head_path() -> Path | None:
    """The promoted ModelVersion's head file; None when none is promoted (or it is missing)."""
    if not apps.is_installed("classifier.curation"):
        return None
    from classifier.curation.models import ModelVersion

    try:
        name = ModelVersion.objects.filter(is_active=True).values_list("head", flat=True).first()
    except DatabaseError:
        # Before `migrate` (or with the database away) the bundled head keeps things working.
        return None
    if not name:
        return None
    path = Path(default_storage.path(name))
    if not path.exists():
        log.error("the promoted head %s is missing; using the bundled head", path)
        return None
    return path


def engine_config(head: Path | None = None) -> EngineConfig:
    """The engine's configuration from the settings, with the active head (or `head`)."""
    return EngineConfig(
        model_dir=Path(settings.GENREWEB_MODEL_DIR),
        head_path=Path(head) if head is not None else head_path(),
        threads=settings.GENREWEB_TORCH_THREADS,
        novelty_path=NOVELTY_MODEL if settings.GENREWEB_NOVELTY_CHECK else None,
    )


def active_engine() -> Engine:
    """The process's engine for the active head."""
    return get_engine(engine_config())


def active_head_info() -> HeadInfo:
    """What the active head says about itself (its genres and their spellings), cheaply."""
    return read_head_info(head_path())
