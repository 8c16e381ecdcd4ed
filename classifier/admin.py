import os

from django import forms
from django.contrib import admin

from classifier.curation.track_actions import add_to_dataset
from classifier.models import LibraryFolder, TagBatch, TagWrite, Track


class LibraryFolderForm(forms.ModelForm):
    class Meta:
        model = LibraryFolder
        fields = ("owner", "path")

    def clean_path(self) -> str:
        """The real path of an existing folder (as `manage.py add_library` registers it)."""
        real = os.path.realpath(os.path.expanduser(self.cleaned_data["path"]))
        if not os.path.isdir(real):
            raise forms.ValidationError("No folder exists at this path on the server.")
        return real


@admin.register(LibraryFolder)
class LibraryFolderAdmin(admin.ModelAdmin):
    form = LibraryFolderForm
    list_display = ("path", "owner", "scan_status", "scan_finished_at", "created_at")
    list_filter = ("scan_status",)
    search_fields = ("path", "owner__username")
    raw_id_fields = ("owner",)
    readonly_fields = (
        "scan_status",
        "scan_started_at",
        "scan_finished_at",
        "scan_counts",
        "scan_error",
        "scan_problems",
    )
    fields = ("owner", "path", *readonly_fields)


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
        "source",
        "missing",
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
    raw_id_fields = ("owner", "folder")
    date_hierarchy = "created_at"
    actions = [add_to_dataset]


class TagWriteInline(admin.TabularInline):
    model = TagWrite
    fk_name = "batch"
    fields = ("track", "status", "genres_before", "genres_after", "error", "undo_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False


@admin.register(TagBatch)
class TagBatchAdmin(admin.ModelAdmin):
    """Tag changes users applied or undid: looked at, not edited (the record undo relies on)."""

    list_display = (
        "pk",
        "kind",
        "owner",
        "description",
        "state",
        "processed",
        "total",
        "created_at",
    )
    list_filter = ("kind", "state")
    search_fields = ("owner__username", "description")
    inlines = [TagWriteInline]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
