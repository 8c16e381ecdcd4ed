"""Removing the temporary files that killed processes left behind.

The atomic writer's copies (`.NAME.XXXX.genreweb-tmp`, beside the file a tag write was
replacing) and Django's upload files (`tmpXXXXXXXX.upload.ext`, in the upload temporary
folder) are removed only once nobody holds them: both kinds stay locked while a live
process writes them (classifier.engine.files.remove_stale_files).
"""

from __future__ import annotations

import logging
import re
import tempfile
from pathlib import Path

from django.conf import settings

from classifier.engine.files import STALE_TEMP_SECONDS, is_temporary, remove_stale_files

log = logging.getLogger(__name__)

# An upload file untouched this long belongs to a request that is over: an upload being
# received is written to continuously, and one being checked and stored is done in minutes.
STALE_UPLOAD_SECONDS = 60 * 60
# The names Django's TemporaryUploadedFile (and intake.local_copy) give: tempfile's "tmp" and
# eight random characters, then ".upload" and the original extension.
_UPLOAD_NAME = re.compile(r"tmp[a-z0-9_]{8}\.upload(\..*)?")


def is_upload_temporary(name: str) -> bool:
    return _UPLOAD_NAME.fullmatch(name) is not None


def upload_temp_dir() -> Path:
    """Where uploads are spooled: FILE_UPLOAD_TEMP_DIR, or the system's temporary folder."""
    return Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())


def remove_stale_uploads(older_than: float = STALE_UPLOAD_SECONDS) -> list[Path]:
    """Remove upload files of requests whose web worker died (an hour old, held by nobody)."""
    return _logged(
        remove_stale_files(upload_temp_dir(), is_upload_temporary, older_than=older_than), "upload"
    )


def remove_stale_media_temporaries(older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the atomic writer's copies left anywhere under MEDIA_ROOT by killed writers."""
    return _logged(
        remove_stale_files(
            settings.MEDIA_ROOT, is_temporary, older_than=older_than, recursive=True
        ),
        "tag-write",
    )


def remove_stale_temporaries() -> list[Path]:
    """Both sweeps (run by celery beat, and at each worker start)."""
    return remove_stale_media_temporaries() + remove_stale_uploads()


def _logged(removed: list[Path], kind: str) -> list[Path]:
    if removed:
        log.warning(
            "removed %d %s temporary files left by killed processes: %s",
            len(removed),
            kind,
            [str(path) for path in removed],
        )
    return removed
