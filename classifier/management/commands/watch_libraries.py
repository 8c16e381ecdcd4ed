"""`manage.py watch_libraries`: scan a library folder soon after its audio files change.

Runs until interrupted (Ctrl-C, SIGTERM); the scans are queued for the Celery worker, as the
periodic rescan's are (see classifier.services.watcher).
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError, close_old_connections

from classifier import tasks
from classifier.services import watcher

# How often the loop asks the watcher for the folders to scan: well below the quiet period.
TICK_SECONDS = 0.2
# After a database error, the pause before trying again (no error every tick).
ERROR_PAUSE_SECONDS = 5.0


class Command(BaseCommand):
    help = (
        "Watch every library folder and queue its scan a moment after its audio files are "
        "added, changed, moved or deleted (one scan per burst of changes)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--quiet",
            type=float,
            default=watcher.QUIET_SECONDS,
            help="seconds a folder must go without a change before its scan is queued "
            f"(default {watcher.QUIET_SECONDS:g})",
        )
        parser.add_argument(
            "--refresh",
            type=float,
            default=watcher.REFRESH_SECONDS,
            help="seconds between readings of the folder table: folders added or removed "
            f"(default {watcher.REFRESH_SECONDS:g})",
        )
        parser.add_argument(
            "--seconds", type=float, default=None, help="stop after this long (default: never)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # SIGTERM (docker stop, a process manager) stops it as Ctrl-C does.
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        watch = watcher.Watcher(
            quiet=options["quiet"],
            refresh=options["refresh"],
            report=self.stdout.write,
            warn=lambda line: self.stderr.write(self.style.WARNING(line)),
        )
        seconds = options["seconds"]
        deadline = None if seconds is None else time.monotonic() + seconds
        try:
            with watch:
                self._loop(watch, deadline)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.stdout.write("Stopped watching.")

    def _loop(self, watch: watcher.Watcher, deadline: float | None) -> None:
        while deadline is None or time.monotonic() < deadline:
            try:
                tasks.queue_scans(watch.step())
            except DatabaseError as exc:
                # The database restarted, say: report, let Django reconnect, go on.
                self.stderr.write(self.style.ERROR(f"The folder table cannot be read: {exc}"))
                close_old_connections()
                time.sleep(ERROR_PAUSE_SECONDS)
            time.sleep(TICK_SECONDS)
