"""The catalog: tracks found on Spotify, sampled with yt-dlp and analysed by the engine."""

from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    PENDING = "pending", "Pending"  # known from Spotify, no sample yet
    SAMPLED = "sampled", "Sampled"  # a 30-second sample is stored, not analysed yet
    ANALYSED = "analysed", "Analysed"  # verdict and embedding stored: it can be recommended
    FAILED = "failed", "Failed"  # see failure_reason; re-fetch from the admin to retry
    EXCLUDED = "excluded", "Excluded"  # taken out by an admin; never recommended or re-fetched


class SeedKind(models.TextChoices):
    SEARCH = "search", "Search query"
    PLAYLIST = "playlist", "Playlist"
    ALBUM = "album", "Album"
    ARTIST = "artist", "Artist"
    TRACK = "track", "Track"


def sample_upload_to(track: CatalogTrack, filename: str) -> str:
    suffix = filename.rsplit(".", 1)[-1] if "." in filename else "mp3"
    return f"catalog/samples/{track.spotify_id[:2]}/{track.spotify_id}.{suffix}"


class CatalogTrack(models.Model):
    spotify_id = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=500)
    artists = models.JSONField(default=list, blank=True)  # names, in Spotify's order
    artist_ids = models.JSONField(default=list, blank=True)  # Spotify ids, same order
    album = models.CharField(max_length=500, blank=True)
    album_id = models.CharField(max_length=64, blank=True)
    release_year = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    spotify_url = models.URLField(max_length=500, blank=True)
    cover_url = models.URLField(max_length=500, blank=True)
    # The union of the artists' genres. Empty where Spotify gives none (new apps often get
    # none): recommendations then rest on the engine's verdict of the audio alone.
    artist_genres = models.JSONField(default=list, blank=True)
    artist_genres_fetched = models.BooleanField(default=False)

    # The ~30-second sample and where it came from.
    sample = models.FileField(upload_to=sample_upload_to, max_length=300, blank=True)
    sample_source = models.URLField(max_length=1000, blank=True)
    sample_source_title = models.CharField(max_length=500, blank=True)
    sample_match = models.FloatField(null=True, blank=True)  # candidate score, 0..1
    sample_start = models.FloatField(null=True, blank=True)  # seconds into the source

    # The engine's verdict on the sample.
    primary_genre = models.CharField(max_length=64, blank=True, db_index=True)
    confidence = models.FloatField(null=True, blank=True)
    uncertain = models.BooleanField(default=False)
    verdict = models.JSONField(null=True, blank=True)  # genres, probabilities, styles
    embedding = models.JSONField(null=True, blank=True)  # 200 floats
    model_version = models.CharField(max_length=200, blank=True)

    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    failure_reason = models.TextField(blank=True)
    # The claim of the step working on it: a step owns the track only while its token is
    # set and claimed_at is recent (see catalog.claim).
    claim_token = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sampled_at = models.DateTimeField(null=True, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "primary_genre"], name="catalog_status_genre"),
            models.Index(fields=["status", "claimed_at"], name="catalog_status_claimed"),
        ]

    def __str__(self) -> str:
        return f"{self.artist_line} – {self.title}"

    @property
    def artist_line(self) -> str:
        return ", ".join(self.artists)

    @property
    def duration_seconds(self) -> float | None:
        return None if self.duration_ms is None else self.duration_ms / 1000

    @property
    def genres(self) -> list[dict]:
        return (self.verdict or {}).get("genres", [])


class CatalogArtist(models.Model):
    """An artist's genres, fetched from Spotify once and reused by every track of theirs."""

    spotify_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=500, blank=True)
    genres = models.JSONField(default=list, blank=True)  # [] where Spotify gives none
    fetched_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or self.spotify_id


class CatalogSeed(models.Model):
    """One seed of build_catalog and how far its paging got, so a new run goes on from there."""

    kind = models.CharField(max_length=16, choices=SeedKind.choices)
    value = models.CharField(max_length=500)  # the query or the Spotify id
    next_url = models.URLField(max_length=2000, blank=True)  # the next page to fetch
    cursor = models.JSONField(default=dict, blank=True)  # artist seeds: albums still to read
    found = models.PositiveIntegerField(default=0)  # tracks taken from it so far
    exhausted = models.BooleanField(default=False)  # Spotify has nothing more
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "value"], name="unique_catalog_seed"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    def is_done(self, limit: int) -> bool:
        return self.exhausted or self.found >= limit
