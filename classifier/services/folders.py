"""Library folders: registered server folders whose audio files are analysed where they lie.

A scan walks the folder with os.scandir, never following a symlink (one that leads outside
the folder is refused and reported; one that leads inside is skipped, its target indexed
where it lies, so a loop costs nothing), and keeps one Track row per audio file: new files
are hashed and queued, a file unchanged in size and mtime is skipped without being read, a
changed one is hashed again and queued, a moved or renamed one is recognised by its content
hash and keeps its verdict, a vanished one is marked missing and comes back if it reappears.
The folder's index (relative path, size, mtime) is loaded once; rows are written in batches,
each batch committed before its analyses are queued (`scan` yields the ids to queue).
Nothing outside the registered folder is read, and nothing in it is written.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from classifier.engine.config import AUDIO_SUFFIXES
from classifier.engine.files import sha256_of
from classifier.models import LibraryFolder, ScanStatus, Source, Stage, Status, Track
from classifier.services.intake import read_tags_quietly

log = logging.getLogger(__name__)

# Rows written (and analyses queued) per transaction.
BATCH = 500
# Problems kept on the folder for its page; the counts say how many there were in all.
MAX_PROBLEMS = 100


class FolderRefused(Exception):
    """A folder that cannot be registered; the message says why."""


# ---------------------------------------------------------------- registering


def register(path: str, username: str) -> LibraryFolder:
    """Register `path` (its real path, symlinks resolved) as a library folder of the user
    named `username`. Raises FolderRefused with a readable reason."""
    owner = get_user_model().objects.filter(username=username).first()
    if owner is None:
        raise FolderRefused(f"There is no user named {username!r}.")
    real = os.path.realpath(os.path.expanduser(path))
    if not os.path.exists(real):
        raise FolderRefused(f"{path} does not exist.")
    if not os.path.isdir(real):
        raise FolderRefused(f"{path} is not a folder.")
    if LibraryFolder.objects.filter(path=real).exists():
        raise FolderRefused(f"{real} is already a library folder.")
    return LibraryFolder.objects.create(owner=owner, path=real)


def visible_to(user: Any) -> Any:
    """The folders a user sees: their own; staff see all."""
    folders = LibraryFolder.objects.select_related("owner")
    return folders if user.is_staff else folders.filter(owner=user)


def live_counts(folders: list[LibraryFolder]) -> dict[int, dict[str, int]]:
    """Per folder, its tracks now: indexed (not missing), queued, analysed, failed, missing
    (one query for all the folders)."""
    rows = (
        Track.objects.filter(folder__in=folders)
        .values("folder_id")
        .annotate(
            indexed=Count("pk", filter=Q(missing=False)),
            queued=Count(
                "pk", filter=Q(missing=False, status__in=[Status.PENDING, Status.PROCESSING])
            ),
            analysed=Count("pk", filter=Q(missing=False, status=Status.DONE)),
            failed=Count("pk", filter=Q(missing=False, status=Status.FAILED)),
            missing=Count("pk", filter=Q(missing=True)),
        )
    )
    empty = {"indexed": 0, "queued": 0, "analysed": 0, "failed": 0, "missing": 0}
    counts = {f.pk: dict(empty) for f in folders}
    for row in rows:
        counts[row.pop("folder_id")] = row
    return counts


# ---------------------------------------------------------------- claiming a scan


def scan_stale_after() -> timedelta:
    return timedelta(seconds=settings.GENREWEB_STALE_AFTER)


def _claimable(now: Any) -> Q:
    # A scan whose worker died stops beating; after GENREWEB_STALE_AFTER it is taken over.
    return ~Q(scan_status=ScanStatus.SCANNING) | Q(scan_beat_at__lt=now - scan_stale_after())


def request_scan(folder_id: int) -> list[int]:
    """Mark the folder's scan queued (not while a live scan runs): the folders to queue."""
    now = timezone.now()
    updated = LibraryFolder.objects.filter(_claimable(now), pk=folder_id).update(
        scan_status=ScanStatus.QUEUED
    )
    return [folder_id] if updated else []


def due_for_rescan() -> list[int]:
    """Every folder no live scan is running on (the periodic rescan queues them all)."""
    now = timezone.now()
    ids = list(LibraryFolder.objects.filter(_claimable(now)).values_list("pk", flat=True))
    return [pk for pk in ids if request_scan(pk)]


def claim_scan(folder_id: int) -> uuid.UUID | None:
    """Take the folder's scan with a conditional update; the claim's token, or None."""
    now = timezone.now()
    token = uuid.uuid4()
    claimed = LibraryFolder.objects.filter(_claimable(now), pk=folder_id).update(
        scan_status=ScanStatus.SCANNING,
        scan_token=token,
        scan_started_at=now,
        scan_beat_at=now,
        scan_error="",
    )
    return token if claimed else None


# ---------------------------------------------------------------- walking


@dataclass
class Found:
    """An audio file the walk found: its path inside the folder and what stat said."""

    relative: str
    size: int
    mtime_ns: int


@dataclass
class Report:
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("found", "new", "changed", "moved", "unchanged", "reappeared", "vanished", "refused"),
            0,
        )
    )
    problems: list[dict[str, str]] = field(default_factory=list)

    def problem(self, relative: str, reason: str) -> None:
        self.counts["refused"] += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append({"path": relative, "reason": reason})


def printable(relative: str) -> str:
    """A relative path as a person can read it, even one whose bytes are not UTF-8."""
    return os.fsencode(relative).decode("utf-8", errors="backslashreplace")


def walk(root: str, report: Report) -> Iterator[Found]:
    """Every audio file under `root`, depth first, reporting what it cannot or will not read.
    Symlinks are never followed (see the module's docstring)."""
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, relative_dir)) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            report.problem(printable(relative_dir) or ".", _os_reason(exc, "folder"))
            continue
        for entry in listed:
            relative = os.path.join(relative_dir, entry.name)
            found = _examine(root, entry, relative, report, pending)
            if found is not None:
                yield found


def _examine(
    root: str, entry: os.DirEntry[str], relative: str, report: Report, pending: list[str]
) -> Found | None:
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        # A name that is not UTF-8 cannot be stored as text faithfully: refused, said so.
        report.problem(printable(relative), "its name is not valid UTF-8; rename it")
        return None
    try:
        if entry.is_symlink():
            _report_link(root, entry, relative, report)
            return None
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:  # vanished since it was listed, or not ours to look at
        report.problem(relative, _os_reason(exc, "file"))
        return None
    if stat.S_ISDIR(info.st_mode):
        pending.append(relative)
        return None
    if not stat.S_ISREG(info.st_mode):
        return None  # sockets, devices, pipes: never opened
    if PurePosixPath(entry.name).suffix.lower() not in AUDIO_SUFFIXES:
        return None
    return Found(relative, info.st_size, info.st_mtime_ns)


def _report_link(root: str, entry: os.DirEntry[str], relative: str, report: Report) -> None:
    """A symlink is never followed: one leading outside is refused, a broken or looping one
    reported; one leading inside is left, its target indexed where it lies."""
    target = os.path.realpath(entry.path)
    if os.path.commonpath([root, target]) != root:
        report.problem(relative, "a link that leads outside the library folder: not followed")
        return
    try:
        os.stat(entry.path)
    except OSError as exc:
        report.problem(relative, _os_reason(exc, "link"))


def _os_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied: the {what} cannot be read"
    if isinstance(exc, FileNotFoundError):
        return f"the {what} vanished during the scan" if what != "link" else "a broken link"
    if exc.errno == 40:  # ELOOP
        return "a symlink loop"
    return f"the {what} cannot be read: {exc.strerror or exc}"


def hash_in_place(root: str, relative: str) -> str:
    """The file's SHA-256, opened without following a link put in its place since the walk."""
    descriptor = os.open(os.path.join(root, relative), os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as handle:
        return sha256_of(handle)


# ---------------------------------------------------------------- scanning


def scan(folder_id: int) -> Iterator[list[int]]:
    """Scan the folder, if its scan is ours to run: yields, batch by batch once each batch
    is committed, the tracks to queue for analysis. A folder that is gone (unmounted, say)
    fails the scan and changes nothing: its tracks are not all marked missing."""
    token = claim_scan(folder_id)
    if token is None:
        return
    folder = LibraryFolder.objects.get(pk=folder_id)
    root = os.path.realpath(folder.path)
    if root != folder.path or not os.path.isdir(root):
        _finish(folder, token, Report(), error=f"{folder.path} is gone or no longer a folder.")
        return
    scanner = Scanner(folder, token, root)
    try:
        yield from scanner.run()
    except Exception as exc:
        log.exception("scan of library folder %s failed", folder_id)
        _finish(folder, token, scanner.report, error=f"The scan stopped: {exc}")
        raise
    _finish(folder, token, scanner.report)


def _finish(folder: LibraryFolder, token: uuid.UUID, report: Report, error: str = "") -> None:
    LibraryFolder.objects.filter(pk=folder.pk, scan_token=token).update(
        scan_status=ScanStatus.FAILED if error else ScanStatus.DONE,
        scan_token=None,
        scan_finished_at=timezone.now(),
        scan_counts=report.counts,
        scan_problems=report.problems,
        scan_error=error,
    )


@dataclass
class Indexed:
    """What the folder's index knows of a path (loaded once per scan)."""

    pk: int
    size: int
    mtime_ns: int | None
    sha256: str
    missing: bool


class Scanner:
    """One scan of one folder: the index in memory, the writes in batches."""

    def __init__(self, folder: LibraryFolder, token: uuid.UUID, root: str) -> None:
        self.folder, self.token, self.root = folder, token, root
        self.report = Report()
        rows = Track.objects.filter(folder=folder).values_list(
            "pk", "relative_path", "size", "mtime_ns", "sha256", "missing"
        )
        self.index: dict[str, Indexed] = {}
        self.by_hash: dict[str, list[int]] = {}
        self.path_of: dict[int, str] = {}
        for pk, relative, size, mtime_ns, digest, missing in rows.iterator(chunk_size=2000):
            self.index[relative] = Indexed(pk, size, mtime_ns, digest, missing)
            self.by_hash.setdefault(digest, []).append(pk)
            self.path_of[pk] = relative
        self.seen: set[int] = set()
        self._clear_batch()

    def _clear_batch(self) -> None:
        self.new: list[Track] = []
        self.changed: list[Track] = []
        self.moved: list[Track] = []
        self.touched: list[Track] = []  # same content, new mtime: no analysis
        self.reappeared: list[int] = []

    def _pending(self) -> int:
        parts = (self.new, self.changed, self.moved, self.touched, self.reappeared)
        return sum(len(p) for p in parts)

    def run(self) -> Iterator[list[int]]:
        for found in walk(self.root, self.report):
            self.report.counts["found"] += 1
            self._take(found)
            if self._pending() >= BATCH:
                yield self._flush()
        yield self._flush()
        self._mark_vanished()

    def _take(self, found: Found) -> None:
        known = self.index.get(found.relative)
        if known is not None and (known.size, known.mtime_ns) == (found.size, found.mtime_ns):
            self.seen.add(known.pk)  # unchanged: not read at all
            if known.missing:
                self.reappeared.append(known.pk)
                self.report.counts["reappeared"] += 1
            else:
                self.report.counts["unchanged"] += 1
            return
        try:
            digest = hash_in_place(self.root, found.relative)
        except OSError as exc:
            self.report.problem(found.relative, _os_reason(exc, "file"))
            if known is not None:
                self.seen.add(known.pk)  # there but unreadable now: not missing
            return
        if known is not None:
            self._changed(known, found, digest)
        elif not self._moved(found, digest):
            self.new.append(self._new_track(found, digest))
            self.report.counts["new"] += 1

    def _changed(self, known: Indexed, found: Found, digest: str) -> None:
        self.seen.add(known.pk)
        if digest == known.sha256:  # touched, same bytes: the verdict stands
            self.touched.append(
                Track(pk=known.pk, size=found.size, mtime_ns=found.mtime_ns, missing=False)
            )
            return
        self.changed.append(
            Track(pk=known.pk, **self._file_fields(found, digest), **_fresh_analysis())
        )
        self.report.counts["changed"] += 1

    def _moved(self, found: Found, digest: str) -> bool:
        """A file of known content whose old path is gone: the same track, moved."""
        for pk in self.by_hash.get(digest, []):
            old = self.path_of[pk]
            if pk in self.seen or os.path.lexists(os.path.join(self.root, old)):
                continue  # still where it was (or already moved): this is a copy
            self.seen.add(pk)
            # Its old path is free now: a new file there later in the walk is a new track.
            self.index.pop(old, None)
            self.path_of[pk] = found.relative
            self.moved.append(
                Track(
                    pk=pk,
                    relative_path=found.relative,
                    original_name=PurePosixPath(found.relative).name[:255],
                    size=found.size,
                    mtime_ns=found.mtime_ns,
                    missing=False,
                )
            )
            self.report.counts["moved"] += 1
            return True
        return False

    def _file_fields(self, found: Found, digest: str) -> dict[str, Any]:
        tags = read_tags_quietly(os.path.join(self.root, found.relative))
        return {
            "sha256": digest,
            "size": found.size,
            "mtime_ns": found.mtime_ns,
            "missing": False,
            **{name: tags.get(name, default) for name, default in TAG_FIELDS.items()},
        }

    def _new_track(self, found: Found, digest: str) -> Track:
        return Track(
            owner_id=self.folder.owner_id,
            source=Source.FOLDER,
            folder=self.folder,
            relative_path=found.relative,
            original_name=PurePosixPath(found.relative).name[:255],
            **self._file_fields(found, digest),
        )

    def _flush(self) -> list[int]:
        """Write the batch in one transaction, beat the claim; the tracks to analyse."""
        now = timezone.now()
        with transaction.atomic():
            created = Track.objects.bulk_create(self.new, batch_size=BATCH)
            for track in self.changed:
                track.updated_at = now
            Track.objects.bulk_update(self.changed, CHANGED_FIELDS, batch_size=BATCH)
            Track.objects.bulk_update(
                self.moved,
                ["relative_path", "original_name", "size", "mtime_ns", "missing"],
                batch_size=BATCH,
            )
            Track.objects.bulk_update(self.touched, ["size", "mtime_ns", "missing"])
            Track.objects.filter(pk__in=self.reappeared).update(missing=False)
            beat = LibraryFolder.objects.filter(pk=self.folder.pk, scan_token=self.token)
            alive = beat.update(scan_beat_at=now, scan_counts=self.report.counts)
        to_analyse = [t.pk for t in created] + [t.pk for t in self.changed]
        self._clear_batch()
        if not alive:
            raise ScanTakenOver(f"the scan of folder {self.folder.pk} was taken over")
        return to_analyse

    def _mark_vanished(self) -> None:
        gone = [
            known.pk
            for known in self.index.values()
            if known.pk not in self.seen and not known.missing
        ]
        for start in range(0, len(gone), BATCH):
            Track.objects.filter(pk__in=gone[start : start + BATCH]).update(missing=True)
        self.report.counts["vanished"] = len(gone)


class ScanTakenOver(Exception):
    """Another scan claimed the folder (this one was silent too long): this one stops."""


# The fields a file's tags give a track (as an upload's), and their blank values.
TAG_FIELDS: dict[str, Any] = {
    "title": "",
    "artist": "",
    "album": "",
    "album_artist": "",
    "audio_format": "",
    "genres_before": [],
    "genres_after": [],
}


def _fresh_analysis() -> dict[str, Any]:
    """A changed file's track back to pending, its claim cleared."""
    return {
        "status": Status.PENDING,
        "stage": Stage.QUEUED,
        "progress": 0.0,
        "error": "",
        "task_id": "",
        "claim_token": None,
        "claimed_at": None,
        "heartbeat_at": None,
        "attempts": 0,
    }


CHANGED_FIELDS = [
    "sha256",
    "size",
    "mtime_ns",
    "missing",
    *TAG_FIELDS,
    *_fresh_analysis(),
    "updated_at",
]
