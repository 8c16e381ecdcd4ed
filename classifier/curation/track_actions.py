"""Admin actions for the web app's Track admin (classifier.models.Track).

The Track admin adds them with `actions = [..., add_to_dataset]`.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest


@admin.action(
    description="Add to the training dataset (proposed samples, labelled with the genre found)"
)
def add_to_dataset(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset) -> None:
    from classifier.curation.services.importing import sample_from_track

    if not request.user.has_perm("curation.add_sample"):
        modeladmin.message_user(request, "You may not add samples.", messages.ERROR)
        return
    added = skipped = 0
    for track in queryset.select_related("owner"):
        if sample_from_track(track) is None:
            skipped += 1
        else:
            added += 1
    modeladmin.message_user(
        request,
        f"{added} tracks added to the dataset as proposed samples; "
        f"{skipped} skipped (no confident genre, or already there).",
        messages.SUCCESS if added else messages.WARNING,
    )
