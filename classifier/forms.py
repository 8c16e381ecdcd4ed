"""Forms of the library pages: upload, filters, bulk actions, tag writing."""

from __future__ import annotations

from django import forms

from classifier.models import ReviewChoice, Source, Status, TagPolicy
from classifier.services import review
from classifier.services.library import SHOW_MISSING, SORT_LABELS, genre_choices

BULK_ACTIONS = [
    ("reanalyse", "Re-analyse"),
    ("write_tags", "Write tags"),
    ("download", "Download as zip"),
    ("delete", "Delete"),
    ("review_accept", "Accept Genreweb's genre"),
    ("review_keep", "Keep the file's genre"),
]


class UploadForm(forms.Form):
    file = forms.FileField()
    tag_policy = forms.ChoiceField(
        choices=TagPolicy.choices, initial=TagPolicy.FILL, required=False
    )

    def clean_tag_policy(self) -> str:
        return self.cleaned_data.get("tag_policy") or TagPolicy.FILL


class LibraryFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    # A callable: the choices follow the active model (a promoted head's new genres).
    genre = forms.ChoiceField(
        required=False,
        choices=lambda: [("", "All genres"), *genre_choices()],
        widget=forms.Select(attrs={"aria-label": "Genre"}),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *Status.choices],
        widget=forms.Select(attrs={"aria-label": "Status"}),
    )
    review = forms.ChoiceField(
        required=False,
        choices=[("", "No review filter"), *review.FILTERS.items()],
        widget=forms.Select(attrs={"aria-label": "Review"}),
    )
    source = forms.ChoiceField(
        required=False,
        choices=[("", "Uploads and folders"), *Source.choices],
        widget=forms.Select(attrs={"aria-label": "Source"}),
    )
    missing = forms.ChoiceField(
        required=False,
        choices=[("", "Hide missing files"), (SHOW_MISSING, "Show missing files")],
        widget=forms.Select(attrs={"aria-label": "Missing files"}),
    )
    folder = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    sort = forms.ChoiceField(
        required=False,
        choices=[
            *SORT_LABELS.items(),
            *((f"-{key}", f"{label} (reversed)") for key, label in SORT_LABELS.items()),
        ],
        widget=forms.Select(attrs={"aria-label": "Sort"}),
    )

    def filters(self) -> dict[str, str]:
        """The valid filters (an invalid field is ignored rather than failing the page)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "q": data.get("q", "").strip(),
            "genre": data.get("genre", ""),
            "status": data.get("status", ""),
            "sort": data.get("sort") or "added",
            "review": data.get("review", ""),
            "source": data.get("source", ""),
            "missing": data.get("missing", ""),
            "folder": str(data.get("folder") or ""),
        }


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=BULK_ACTIONS)
    tracks = forms.TypedMultipleChoiceField(
        coerce=int, choices=(), required=True, error_messages={"required": "Select some tracks."}
    )
    tag_policy = forms.ChoiceField(choices=TagPolicy.choices, required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Any id is accepted here; the view answers 404 where one is not the user's.
        self.fields["tracks"].valid_value = lambda value: str(value).isdigit()

    def clean(self) -> dict:
        data = super().clean()
        if data.get("action") == "write_tags" and not data.get("tag_policy"):
            self.add_error("tag_policy", "Choose how to write the tags.")
        return data


class TagPreviewForm(forms.Form):
    policy = forms.ChoiceField(choices=TagPolicy.choices, initial=TagPolicy.FILL, required=False)
    # When the applied preview was made: a track analysed since is not written unseen.
    previewed_at = forms.DateTimeField(required=False)
    # A selection from the library's checkboxes; without one, the filters choose.
    tracks = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tracks"].valid_value = lambda value: str(value).isdigit()

    def clean_policy(self) -> str:
        return self.cleaned_data.get("policy") or TagPolicy.FILL


class UndoSinceForm(forms.Form):
    since = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        error_messages={"required": "Give the date and time to undo from."},
    )


class RetagForm(forms.Form):
    tag_policy = forms.ChoiceField(choices=TagPolicy.choices)


class ReviewForm(forms.Form):
    choice = forms.ChoiceField(choices=[(c.value, c.label) for c in ReviewChoice if c.value])
