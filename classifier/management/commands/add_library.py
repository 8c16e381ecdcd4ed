"""`manage.py add_library PATH --owner USER`: register a server folder as a library folder."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier import tasks
from classifier.services import folders


class Command(BaseCommand):
    help = (
        "Register a folder on this server as a user's library folder: its audio files are "
        "analysed where they lie (never copied, never written), and it is scanned again "
        "periodically."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="the folder (its real path is registered)")
        parser.add_argument("--owner", required=True, help="the username it belongs to")
        parser.add_argument(
            "--no-scan", action="store_true", help="do not queue its first scan now"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            folder = folders.register(options["path"], options["owner"])
        except folders.FolderRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Registered {folder.path} for {folder.owner} (folder {folder.pk}).")
        if not options["no_scan"]:
            tasks.queue_scans(folders.request_scan(folder.pk))
            self.stdout.write("Its first scan is queued.")
