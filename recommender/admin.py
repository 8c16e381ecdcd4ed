"""The catalog in the admin: browse, search, listen, read verdicts, re-fetch and exclude."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from recommender import tasks
from recommender.models import CatalogArtist, CatalogSeed, CatalogTrack, Status
from recommender.services import curation


def sample_player(track: CatalogTrack) -> str:
    if not track.sample:
        return "–"
    url = reverse("recommender:catalog-sample", args=[track.pk])
    return format_html('<audio controls preload="none" src="{}" style="height:30px"></audio>', url)


@admin.register(CatalogTrack)
class CatalogTrackAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "artist_line",
        "album",
        "release_year",
        "status",
        "primary_genre",
        "confidence_display",
        "player",
    )
    list_filter = ("status", "primary_genre", "uncertain", "release_year")
    search_fields = (
        "title",
        "album",
        "artists",
        "spotify_id",
        "primary_genre",
        "artist_genres",
        "failure_reason",
    )
    list_per_page = 50
    actions = ["refetch_tracks", "exclude_tracks"]
    readonly_fields = (
        "spotify_id",
        "title",
        "artists",
        "artist_ids",
        "album",
        "album_id",
        "release_year",
        "duration_ms",
        "spotify_link",
        "cover",
        "artist_genres",
        "player",
        "sample",
        "sample_source",
        "sample_source_title",
        "sample_match",
        "sample_start",
        "status",
        "failure_reason",
        "primary_genre",
        "confidence",
        "uncertain",
        "verdict_display",
        "model_version",
        "attempts",
        "claimed_at",
        "created_at",
        "sampled_at",
        "analysed_at",
    )
    fieldsets = (
        (
            "Spotify",
            {
                "fields": (
                    "spotify_id",
                    "title",
                    "artists",
                    "artist_ids",
                    "album",
                    "album_id",
                    "release_year",
                    "duration_ms",
                    "spotify_link",
                    "cover",
                    "artist_genres",
                )
            },
        ),
        (
            "Sample",
            {
                "fields": (
                    "player",
                    "sample",
                    "sample_source",
                    "sample_source_title",
                    "sample_match",
                    "sample_start",
                )
            },
        ),
        (
            "Verdict",
            {
                "fields": (
                    "status",
                    "failure_reason",
                    "primary_genre",
                    "confidence",
                    "uncertain",
                    "verdict_display",
                    "model_version",
                )
            },
        ),
        (
            "Progress",
            {"fields": ("attempts", "claimed_at", "created_at", "sampled_at", "analysed_at")},
        ),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tracks come from build_catalog

    @admin.display(description="sample")
    def player(self, track: CatalogTrack) -> str:
        return sample_player(track)

    @admin.display(description="confidence", ordering="confidence")
    def confidence_display(self, track: CatalogTrack) -> str:
        return "–" if track.confidence is None else f"{track.confidence:.0%}"

    @admin.display(description="Spotify")
    def spotify_link(self, track: CatalogTrack) -> str:
        if not track.spotify_url:
            return "–"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>',
            track.spotify_url,
            track.spotify_url,
        )

    @admin.display(description="cover")
    def cover(self, track: CatalogTrack) -> str:
        if not track.cover_url:
            return "–"
        return format_html('<img src="{}" alt="" width="120" height="120">', track.cover_url)

    @admin.display(description="verdict")
    def verdict_display(self, track: CatalogTrack) -> str:
        verdict = track.verdict or {}
        genres = format_html_join(
            ", ",
            "{} {}",
            ((g["name"], f"{g['confidence']:.0%}") for g in verdict.get("genres", [])),
        )
        styles = format_html_join(
            ", ", "{} {}", ((s["name"], f"{s['score']:.0%}") for s in verdict.get("styles", []))
        )
        if not genres and not styles:
            return "–"
        return format_html("Genres: {}<br>Styles: {}", genres or "–", styles or "–")

    @admin.action(description="Re-fetch: new sample and verdict (and Spotify metadata)")
    def refetch_tracks(self, request: HttpRequest, queryset: QuerySet[CatalogTrack]) -> None:
        track_ids = curation.refetch(queryset)
        tasks.queue_refetch(track_ids)
        self.message_user(
            request, f"{len(track_ids)} track(s) queued to be fetched again.", messages.SUCCESS
        )

    @admin.action(description="Exclude from recommendations")
    def exclude_tracks(self, request: HttpRequest, queryset: QuerySet[CatalogTrack]) -> None:
        count = curation.exclude(queryset.exclude(status=Status.EXCLUDED))
        self.message_user(request, f"{count} track(s) excluded.", messages.SUCCESS)


@admin.register(CatalogArtist)
class CatalogArtistAdmin(admin.ModelAdmin):
    list_display = ("name", "spotify_id", "genre_list", "fetched_at")
    search_fields = ("name", "spotify_id", "genres")

    @admin.display(description="genres")
    def genre_list(self, artist: CatalogArtist) -> str:
        return ", ".join(artist.genres) or "– (none from Spotify)"


@admin.register(CatalogSeed)
class CatalogSeedAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "found", "exhausted", "updated_at")
    list_filter = ("kind", "exhausted")
    search_fields = ("value",)
    readonly_fields = ("kind", "value", "found", "exhausted", "cursor", "created_at", "updated_at")
