"""Forms of the curation admin pages."""

from __future__ import annotations

from django import forms

from classifier.curation.models import Genre, Sample, TrainingRun


class ImportForm(forms.Form):
    archive = forms.FileField(
        required=False,
        label="Zip archive",
        help_text="A zip of genre folders (blues/a.mp3, rock/b.flac ...) or of files with a "
        "labels.csv (file, genres separated by ; | or , and optionally artist), optionally "
        "inside one top folder. Files already in the dataset are skipped.",
    )
    folder = forms.CharField(
        required=False,
        label="Or a folder on the server",
        help_text="Path of DIR/<genre>/<files>, or of DIR/labels.csv and its files, on the "
        "server (superusers only).",
    )
    status = forms.ChoiceField(
        choices=[
            (Sample.Status.PROPOSED, "proposed (review them first)"),
            (Sample.Status.APPROVED, "approved"),
        ],
        initial=Sample.Status.PROPOSED,
        label="Review status",
    )
    analyse = forms.BooleanField(
        required=False, initial=True, label="Compute the active model's verdicts (in a worker)"
    )

    def __init__(self, *args, allow_folder: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.allow_folder = allow_folder
        if not allow_folder:
            del self.fields["folder"]

    def clean(self) -> dict:
        data = super().clean()
        archive, folder = data.get("archive"), (data.get("folder") or "").strip()
        if bool(archive) == bool(folder):
            raise forms.ValidationError("Give either a zip archive or a folder on the server.")
        data["folder"] = folder
        return data


class RelabelForm(forms.Form):
    REPLACE, ADD = "replace", "add"

    genres = forms.ModelMultipleChoiceField(
        queryset=Genre.objects.all(),
        label="Genres",
        help_text="Every genre that applies (hold Ctrl or Cmd to pick several).",
    )
    mode = forms.ChoiceField(
        choices=[(REPLACE, "replace their genres with these"), (ADD, "add these to their genres")],
        initial=REPLACE,
        label="How",
    )
    approve = forms.BooleanField(
        required=False, initial=True, label="Mark them approved (I have listened to them)"
    )


class TrainingRunForm(forms.ModelForm):
    class Meta:
        model = TrainingRun
        fields = [
            "epochs",
            "weight_decay",
            "hidden",
            "feature",
            "validation_fraction",
            "roll_up_subgenres",
            "seed",
            "notes",
        ]

    def clean_epochs(self) -> int:
        epochs = self.cleaned_data["epochs"]
        if not 1 <= epochs <= 5000:
            raise forms.ValidationError("between 1 and 5000")
        return epochs

    def clean_weight_decay(self) -> float:
        wd = self.cleaned_data["weight_decay"]
        if not 0 <= wd <= 1:
            raise forms.ValidationError("between 0 and 1")
        return wd

    def clean_hidden(self) -> int:
        hidden = self.cleaned_data["hidden"]
        if hidden > 4096:
            raise forms.ValidationError("at most 4096")
        return hidden

    def clean_validation_fraction(self) -> float:
        fraction = self.cleaned_data["validation_fraction"]
        if not 0 <= fraction <= 0.5:
            raise forms.ValidationError("between 0 and 0.5")
        return fraction
