from django.contrib import admin

from classifier.curation.track_actions import add_to_dataset
from classifier.models import Track


@admin.register(Track)
class TrackAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "display_title",
        "artist",
        "status",
        "stage",
        "primary_genre",
        "confidence",
        "model_version",
        "created_at",
    )
    list_filter = (
        "status",
        "primary_genre",
        "uncertain",
        "far_from_album",
        "review_choice",
        "tag_policy",
        "model_version",
    )
    search_fields = ("title", "artist", "album", "original_name", "sha256", "owner__username")
    readonly_fields = (
        "sha256",
        "size",
        "created_at",
        "updated_at",
        "analysed_at",
        "claimed_at",
        "claim_token",
        "task_id",
        "attempts",
        # What the fusion made of the evidence: changed by analysing, never by hand.
        "audio_verdict",
        "evidence",
        "fusion",
        "album_key",
        "artist_key",
        "far_from_album",
        "album_distance",
        "tag_agrees",
        "disagreement",
    )
    raw_id_fields = ("owner",)
    date_hierarchy = "created_at"
    actions = [add_to_dataset]
