"""A user's track: the stored file (or a file of a library folder, analysed in place), what
its tags said, and what the engine found; and the library folders registered on the server."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import F, Func, Value
from django.db.models.functions import Coalesce, Lower, NullIf
from django.utils.text import get_valid_filename

from classifier.engine.errors import EngineError


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Stage(models.TextChoices):
    """Where the analysis of a track is, for the upload page's progress bars."""

    QUEUED = "queued", "Queued"
    DECODING = "decoding", "Decoding"
    ANALYSING = "analysing", "Analysing"
    TAGGING = "tagging", "Tagging"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TagPolicy(models.TextChoices):
    """How found genres go into a file's tags (see classifier.tags.write_genres)."""

    FILL = "fill", "Fill: only where the file has no genre"
    REPLACE = "replace", "Replace the file's genres"
    MERGE = "merge", "Merge with the file's genres"


class ReviewChoice(models.TextChoices):
    """What the owner decided where the audio and the file's genre tag disagree."""

    NONE = "", "Not reviewed"
    ACCEPT = "accept", "Accepted Genreweb's genre"
    KEEP = "keep", "Kept the file's genre"


class Source(models.TextChoices):
    """Where a track's file lives: stored by Genreweb (an upload) or in a library folder."""

    UPLOAD = "upload", "Upload"
    FOLDER = "folder", "Library folder"


class ScanStatus(models.TextChoices):
    NEVER = "never", "Not scanned yet"
    QUEUED = "queued", "Scan queued"
    SCANNING = "scanning", "Scanning"
    DONE = "done", "Scanned"
    FAILED = "failed", "Scan failed"


class OutsideFolder(EngineError):
    """A folder track's path no longer leads to a file inside its folder (a link put in its
    place): it is not read."""


class LibraryFolder(models.Model):
    """A folder on the server whose audio files are analysed where they lie (never copied,
    never written by the analysis)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="library_folders"
    )
    # The real path (symlinks resolved) when it was registered.
    path = models.CharField(max_length=1000, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # The last (or running) scan, claimed like a track's analysis: a token and a beat.
    scan_status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.NEVER
    )
    scan_token = models.UUIDField(null=True, blank=True)
    scan_started_at = models.DateTimeField(null=True, blank=True)
    scan_beat_at = models.DateTimeField(null=True, blank=True)
    scan_finished_at = models.DateTimeField(null=True, blank=True)
    # Counts of the last scan: audio files found, new, changed, moved, vanished, refused.
    scan_counts = models.JSONField(default=dict, blank=True)
    scan_error = models.TextField(blank=True)  # why the whole scan failed
    # What the scan refused or could not read, file by file (the first hundred).
    scan_problems = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path

    @property
    def is_scanning(self) -> bool:
        """A scan is queued or running (the folders page follows it live)."""
        return self.scan_status in (ScanStatus.QUEUED, ScanStatus.SCANNING)


def display_title(title: str, original_name: str) -> str:
    """What a track is called: its tag's title, else its file name without the extension."""
    return title or PurePosixPath(original_name).stem


def sort_title() -> Func:
    """What the library sorts titles by: an untagged track by its file name, not first
    because its title is blank; case aside."""
    return Lower(Coalesce(NullIf("title", Value("")), "original_name"))


def track_upload_to(track: Track, filename: str) -> str:
    """tracks/<user id>/<first hash digits>/<hash>/<original name>: one folder per user."""
    name = get_valid_filename(PurePosixPath(filename).name) or "track"
    return f"tracks/{track.owner_id}/{track.sha256[:2]}/{track.sha256}/{name[-120:]}"


class Track(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracks"
    )
    file = models.FileField(upload_to=track_upload_to, max_length=500, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.UPLOAD)
    # A folder track: its folder, its path inside it, and the size and modification time it
    # had when hashed (a rescan skips a file whose size and mtime are unchanged).
    folder = models.ForeignKey(
        LibraryFolder, on_delete=models.CASCADE, null=True, blank=True, related_name="tracks"
    )
    relative_path = models.CharField(max_length=1000, blank=True, default="")
    mtime_ns = models.BigIntegerField(null=True, blank=True)
    # Gone from its folder at the last scan: kept, verdict and all, in case it comes back.
    missing = models.BooleanField(default=False)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.QUEUED)
    progress = models.FloatField(default=0.0)  # within the current stage, 0..1
    error = models.TextField(blank=True)

    # From the file's tags as uploaded.
    title = models.CharField(max_length=500, blank=True)
    artist = models.CharField(max_length=500, blank=True)
    album = models.CharField(max_length=500, blank=True)
    album_artist = models.CharField(max_length=500, blank=True)
    audio_format = models.CharField(max_length=16, blank=True)
    genres_before = models.JSONField(default=list, blank=True)
    genres_after = models.JSONField(default=list, blank=True)

    # The engine's verdict.
    duration = models.FloatField(null=True, blank=True)
    verdict = models.JSONField(null=True, blank=True)
    timeline = models.JSONField(default=list, blank=True)
    embedding = models.JSONField(null=True, blank=True)  # 200 floats, the chunks' mean
    model_version = models.CharField(max_length=200, blank=True, db_index=True)
    primary_genre = models.CharField(max_length=64, blank=True, db_index=True)
    # Every genre the verdict gives the track ("|Electronic|House|Pop|": those at or above its
    # threshold, styles with their genres; empty when uncertain): what the genre filter
    # matches, as a track can be Rock and Electronic.
    genre_index = models.TextField(blank=True, default="")
    confidence = models.FloatField(null=True, blank=True)
    uncertain = models.BooleanField(default=False)
    tag_policy = models.CharField(max_length=16, choices=TagPolicy.choices, default=TagPolicy.FILL)

    # Evidence beside the audio (classifier.services.evidence): `verdict` above is the fused
    # one; `audio_verdict` what the audio alone said, in the same shape, kept so the track is
    # fused again from it when its album or artist changes, without analysing the audio.
    audio_verdict = models.JSONField(null=True, blank=True)
    # What each source said, as `classify --json` gives it: [{"source": "file_tag"|"album"|
    # "artist", "genres": [...], ...}].
    evidence = models.JSONField(default=list, blank=True)
    # The file's tag evidence as read ({"file": ...}) and how each source moved the top
    # genres ({"steps": ...}), for the track page's picture.
    fusion = models.JSONField(default=dict, blank=True)
    # Which album (album artist, else artist; album name) and artist the track pools with,
    # compared loosely; blank where the tags name none.
    album_key = models.CharField(max_length=500, blank=True, default="")
    artist_key = models.CharField(max_length=500, blank=True, default="")
    far_from_album = models.BooleanField(default=False)
    album_distance = models.FloatField(null=True, blank=True)
    # Whether the file's tag names the audio's best genre (None: no tag that maps), and how
    # strongly the audio disagrees with it (0 where it agrees): the review queue's order.
    tag_agrees = models.BooleanField(null=True, blank=True)
    disagreement = models.FloatField(null=True, blank=True)
    review_choice = models.CharField(
        max_length=8, choices=ReviewChoice.choices, blank=True, default=ReviewChoice.NONE
    )

    # The claim of the task analysing it: which message, which attempt, since when, and when
    # its worker last said it was alive (a claim silent for GENREWEB_HEARTBEAT_TIMEOUT is dead).
    task_id = models.CharField(max_length=255, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    analysed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # An upload is stored once per content; a folder may hold the same file twice.
            models.UniqueConstraint(
                fields=["owner", "sha256"],
                condition=models.Q(source="upload"),
                name="unique_track_per_owner",
            ),
            models.UniqueConstraint(
                fields=["folder", "relative_path"],
                condition=models.Q(source="folder"),
                name="unique_track_per_folder_path",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "claimed_at"], name="track_status_claimed"),
            models.Index(fields=["owner", "album_key"], name="track_owner_album"),
            models.Index(fields=["owner", "artist_key"], name="track_owner_artist"),
            models.Index(fields=["folder", "sha256"], name="track_folder_hash"),
            # The library page at scale: its newest-first page, its counts and chart (one
            # grouped pass over the index, not the rows), the genre filter's count (the
            # genres read from the index), and whether a user's "songs like this" index is
            # up to date.
            models.Index(fields=["owner", "-created_at", "-id"], name="track_owner_added"),
            models.Index(
                fields=["owner", "status", "missing", "source", "primary_genre", "model_version"],
                name="track_owner_summary",
            ),
            models.Index(
                fields=["owner", "missing", "primary_genre", "genre_index"],
                name="track_owner_genres",
            ),
            models.Index(fields=["owner", "status", "analysed_at"], name="track_owner_analysed"),
            # The library sorted by title (the most asked sort after the newest).
            models.Index(F("owner"), sort_title(), F("id"), name="track_owner_title"),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        return display_title(self.title, self.original_name)

    @property
    def in_folder(self) -> bool:
        return self.source == Source.FOLDER

    @property
    def audio_path(self) -> str:
        """The file to read: the stored upload, or the folder file in place. A folder file
        whose path now resolves outside its folder raises OutsideFolder: nothing outside a
        registered folder is ever read."""
        if not self.in_folder:
            return self.file.path
        assert self.folder is not None
        root = os.path.realpath(self.folder.path)
        real = os.path.realpath(os.path.join(root, self.relative_path))
        if os.path.commonpath([root, real]) != root:
            raise OutsideFolder(f"{self.relative_path} now leads outside its library folder.")
        return real

    @property
    def file_name(self) -> str:
        """The file's name where it lies (its extension says what it is served as)."""
        return PurePosixPath(self.relative_path).name if self.in_folder else self.file.name

    @property
    def is_finished(self) -> bool:
        return self.status in (Status.DONE, Status.FAILED)

    @property
    def genres(self) -> list[dict]:
        """The ranked genres with confidences, best first (empty until analysed)."""
        return (self.verdict or {}).get("genres", [])

    @property
    def probabilities(self) -> list[tuple[str, float]]:
        """Every genre's probability, most likely first."""
        probs = (self.verdict or {}).get("probabilities", {})
        return sorted(probs.items(), key=lambda item: -item[1])

    @property
    def audio_genres(self) -> list[dict]:
        """The audio's own ranked genres, before any evidence (empty until analysed)."""
        return (self.audio_verdict or {}).get("genres", [])

    def evidence_of(self, source: str) -> dict | None:
        """What one source ("file_tag", "album", "artist") said, or None."""
        return next((e for e in self.evidence or [] if e.get("source") == source), None)

    @property
    def styles(self) -> list[dict]:
        return (self.verdict or {}).get("styles", [])

    @property
    def tag_values(self) -> list[str]:
        """The genres the engine would write into the file's tags (none when uncertain)."""
        return (self.verdict or {}).get("tag_values", [])

    @property
    def warnings(self) -> list[str]:
        """What decoding the file had to put up with (e.g. junk after the audio)."""
        return (self.verdict or {}).get("warnings", [])

    @property
    def missing_tags(self) -> list[str]:
        """Found genres the file's tags do not hold (the fill policy keeps existing genres)."""
        present = {g.casefold() for g in self.genres_after}
        return [g for g in self.tag_values if g.casefold() not in present]


class TagBatchKind(models.TextChoices):
    APPLY = "apply", "Write genres"
    UNDO = "undo", "Undo"


class TagBatchState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TagBatch(models.Model):
    """One request to write previewed genre changes into files, or to undo earlier writes:
    worked through in the background, one file at a time, each recorded in a TagWrite."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tag_batches"
    )
    kind = models.CharField(max_length=8, choices=TagBatchKind.choices)
    state = models.CharField(
        max_length=8, choices=TagBatchState.choices, default=TagBatchState.QUEUED
    )
    # What the user chose, in words ("genre Rock, fill", "changes since 1 Dec 2026").
    description = models.CharField(max_length=500, blank=True)
    policy = models.CharField(max_length=16, choices=TagPolicy.choices, blank=True)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}: {self.description}"

    @property
    def is_finished(self) -> bool:
        return self.state in (TagBatchState.DONE, TagBatchState.FAILED)


class WriteStatus(models.TextChoices):
    PLANNED = "planned", "Planned"
    WRITTEN = "written", "Written"
    SKIPPED = "skipped", "Not written: changed since the preview"
    FAILED = "failed", "Failed"
    UNDONE = "undone", "Undone"


class TagWrite(models.Model):
    """One file's genre change: what it held (the values replaced, exactly, for undo), what
    was written, and the file's hash after the write (an undo refuses a file changed since)."""

    batch = models.ForeignKey(TagBatch, on_delete=models.CASCADE, related_name="writes")
    track = models.ForeignKey(Track, on_delete=models.CASCADE, related_name="tag_writes")
    status = models.CharField(
        max_length=8, choices=WriteStatus.choices, default=WriteStatus.PLANNED
    )
    genres_before = models.JSONField(default=list)
    genres_after = models.JSONField(default=list)
    # classifier.engine.tagrestore's snapshot of the genre fields, taken just before writing.
    replaced = models.JSONField(null=True, blank=True)
    sha256_after = models.CharField(max_length=64, blank=True)
    written_at = models.DateTimeField(null=True, blank=True, db_index=True)
    error = models.TextField(blank=True)
    undo_batch = models.ForeignKey(
        TagBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="undoes"
    )
    sha256_undone = models.CharField(max_length=64, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    undo_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["track", "status"], name="tagwrite_track_status")]

    def __str__(self) -> str:
        return f"{self.track}: {self.genres_before} -> {self.genres_after} ({self.status})"
