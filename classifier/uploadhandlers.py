"""The upload handler: Django's stream-to-disk handler, with its temporary file locked."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import TemporaryFileUploadHandler

from classifier.engine.files import hold


class LockedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Each upload is spooled to a temporary file (`tmpXXXXXXXX.upload.ext`) that stays locked
    until its request closes it, so the sweep of upload files left by a dead web worker
    (classifier.services.cleanup) can tell an abandoned one from one in use."""

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        hold(self.file.file)
