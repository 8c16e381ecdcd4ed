"""A user's track: the stored file, what its tags said, and what the engine found."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.utils.text import get_valid_filename


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


def track_upload_to(track: Track, filename: str) -> str:
    """tracks/<user id>/<first hash digits>/<hash>/<original name>: one folder per user."""
    name = get_valid_filename(PurePosixPath(filename).name) or "track"
    return f"tracks/{track.owner_id}/{track.sha256[:2]}/{track.sha256}/{name[-120:]}"


class Track(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracks"
    )
    file = models.FileField(upload_to=track_upload_to, max_length=500)
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
            models.UniqueConstraint(fields=["owner", "sha256"], name="unique_track_per_owner"),
        ]
        indexes = [
            models.Index(fields=["status", "claimed_at"], name="track_status_claimed"),
            models.Index(fields=["owner", "album_key"], name="track_owner_album"),
            models.Index(fields=["owner", "artist_key"], name="track_owner_artist"),
        ]

    def __str__(self) -> str:
        return self.display_title

    @property
    def display_title(self) -> str:
        return self.title or PurePosixPath(self.original_name).stem

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
