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
    list_filter = ("status", "primary_genre", "uncertain", "tag_policy", "model_version")
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
    )
    raw_id_fields = ("owner",)
    date_hierarchy = "created_at"
    actions = [add_to_dataset]
