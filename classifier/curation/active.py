"""The promoted genre head, for classifier.registry.default_head_path().

Asked once per analysed track, so a promotion reaches every running worker and web process
at its next track. One indexed query; engines are cached per head path, so the head file is
only loaded again when the answer changes.
"""
from __future__ import annotations

import logging
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import DatabaseError

log = logging.getLogger(__name__)


def active_head_path() -> Path | None:
    """The promoted ModelVersion's head file; None when none is promoted (the bundled head)."""
    from classifier.curation.models import ModelVersion

    try:
        name = (ModelVersion.objects.filter(is_active=True)
                .values_list("head", flat=True).first())
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
