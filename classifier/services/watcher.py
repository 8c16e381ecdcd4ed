"""Watching library folders: a change to a folder's audio files asks for that folder's scan.

A watchdog Observer (inotify on Linux) watches every registered folder, recursively and
without following links. Its handlers run on the observer's threads and only note which
folder changed and when; the caller's loop calls `Watcher.step`, which hands a folder quiet
for `quiet` seconds to folders.request_scan, so copying an album is one scan, not one per
file, and only the caller's thread touches the database. Every `refresh` seconds the folder
table is read again: new folders are watched, removed ones dropped, and a watch that died
(its folder deleted or unmounted) is set up again once the folder is back.

A scan is incremental (folders.scan): one scan too many costs a walk and a stat per file, one
too few is made good by the periodic rescan. Nothing here queues anything: `step` returns
the folders whose scan the caller is to queue.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import PurePath
from types import TracebackType

from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from classifier.engine.config import AUDIO_SUFFIXES
from classifier.models import LibraryFolder
from classifier.services import folders

log = logging.getLogger(__name__)

# A folder is scanned once it has been this long without a change (a copy writes its files
# one after another; each file's events restart the wait).
QUIET_SECONDS = 2.0
# ... or this long after its first change, so a copy that never pauses is scanned anyway
# (what it writes later brings another scan).
LONGEST_SECONDS = 60.0
# The folder table is read again this often: folders registered or removed since.
REFRESH_SECONDS = 30.0

# Only what can change a scan's index: a file's events, and a folder moved or deleted (its
# files send no events of their own then). Opening, closing, attributes: not asked for, so
# inotify does not even report them.
WATCHED_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]

Report = Callable[[str], None]


def counts(root: str, path: str, is_directory: bool) -> bool:
    """Whether a change at `path` can change what a scan of the folder `root` indexes."""
    relative = PurePath(os.path.relpath(path, root))
    if relative.parts[:1] == ("..",):
        return False  # not in the folder: another folder's concern, if any's
    if any(part.startswith(".") for part in relative.parts):
        return False  # hidden files and folders: players', editors' and downloaders' own
    if os.path.islink(path):
        return False  # a scan never follows a link (one leading outside is refused)
    return is_directory or relative.suffix.lower() in AUDIO_SUFFIXES  # '.part' is not


class FolderEvents(FileSystemEventHandler):
    """One folder's events, noted by its id (on the observer's thread: no database here)."""

    def __init__(self, folder_id: int, root: str, note: Callable[[int], None]) -> None:
        self.folder_id, self.root, self.note = folder_id, root, note

    def on_any_event(self, event: FileSystemEvent) -> None:
        # A move counts if either end does: 'a.mp3.part' renamed to 'a.mp3' is a new file.
        paths = [os.fsdecode(p) for p in (event.src_path, event.dest_path) if p]
        if any(counts(self.root, path, event.is_directory) for path in paths):
            self.note(self.folder_id)


class Debouncer:
    """Folders that changed, each due once when `quiet` seconds pass without a change (or
    `longest` after its first). Noted from the observer's threads, read from the caller's."""

    def __init__(
        self, quiet: float, longest: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.quiet, self.longest, self.clock = quiet, longest, clock
        self._lock = threading.Lock()
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}

    def note(self, key: int) -> None:
        now = self.clock()
        with self._lock:
            self._first.setdefault(key, now)
            self._last[key] = now

    def due(self) -> list[int]:
        """The keys whose wait is over, forgotten as they are returned."""
        now = self.clock()
        with self._lock:
            ready = [
                key
                for key, last in self._last.items()
                if now - last >= self.quiet or now - self._first[key] >= self.longest
            ]
            for key in ready:
                del self._first[key], self._last[key]
        return sorted(ready)


class Watcher:
    """Watches the registered library folders; `step` says which to scan now.

    Use it as a context manager (or start and stop it) and call `step` every fraction of a
    second. `report` hears what it does, `warn` what it cannot do (it goes on regardless).
    """

    def __init__(
        self,
        *,
        quiet: float = QUIET_SECONDS,
        longest: float = LONGEST_SECONDS,
        refresh: float = REFRESH_SECONDS,
        report: Report = log.info,
        warn: Report = log.warning,
    ) -> None:
        self.refresh_every, self.report, self.warn = refresh, report, warn
        self.changes = Debouncer(quiet, longest)
        self.observer: BaseObserver = Observer()
        self.watches: dict[int, tuple[str, ObservedWatch]] = {}
        self._refused: dict[int, str] = {}  # warned once per folder and reason, not each time
        self._warned_empty = False
        self._next_refresh = 0.0

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        # Started empty, then each folder scheduled on the running observer: a folder that
        # cannot be watched then fails alone, at schedule, not the observer's start.
        self.observer.start()
        self.refresh()

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join()

    def step(self) -> list[int]:
        """The folders to scan now: those quiet since they changed whose scan was requested
        (folders.request_scan). Reads the folder table again when it is time to."""
        if time.monotonic() >= self._next_refresh:
            self.refresh()
        to_scan: list[int] = []
        for folder_id in self.changes.due():
            if folder_id not in self.watches:
                continue  # removed since it changed
            requested = folders.request_scan(folder_id)
            if not requested:
                # A scan is running and may have walked past the change: ask again later.
                self.changes.note(folder_id)
            to_scan += requested
        if to_scan:
            self.report(f"Changes in folder(s) {to_scan}: scan requested.")
        return to_scan

    def refresh(self) -> None:
        """Watch the folders registered now, drop those removed, set up again a dead watch."""
        self._next_refresh = time.monotonic() + self.refresh_every
        registered = dict(LibraryFolder.objects.values_list("pk", "path"))
        alive = {emitter.watch for emitter in self.observer.emitters if emitter.is_alive()}
        for folder_id, (path, watch) in list(self.watches.items()):
            if registered.get(folder_id) != path or watch not in alive:
                self._drop(folder_id)
        for folder_id, path in registered.items():
            if folder_id not in self.watches:
                self._watch(folder_id, path)
        self._say_if_empty(registered)

    def _watch(self, folder_id: int, path: str) -> None:
        handler = FolderEvents(folder_id, path, self.changes.note)
        try:
            watch = self.observer.schedule(
                handler, path, recursive=True, event_filter=WATCHED_EVENTS
            )
        except OSError as exc:
            self._refuse(folder_id, f"{path} (folder {folder_id}) cannot be watched: {exc}")
            return
        self.watches[folder_id] = (path, watch)
        self._refused.pop(folder_id, None)
        self.report(f"Watching {path} (folder {folder_id}).")

    def _drop(self, folder_id: int) -> None:
        path, watch = self.watches.pop(folder_id)
        self.observer.unschedule(watch)
        self.report(f"No longer watching {path} (folder {folder_id}).")

    def _refuse(self, folder_id: int, reason: str) -> None:
        if self._refused.get(folder_id) != reason:
            self._refused[folder_id] = reason
            self.warn(f"{reason}; tried again every {self.refresh_every:g} s.")

    def _say_if_empty(self, registered: dict[int, str]) -> None:
        # Said once when the table is (or becomes) empty, not at every refresh.
        if not registered and not self._warned_empty:
            self.warn(
                "No library folders are registered (manage.py add_library PATH --owner USER); "
                "waiting for some."
            )
        self._warned_empty = not registered
