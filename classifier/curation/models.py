"""The curated dataset: genres, labelled samples, training runs and the model versions they make."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise(name: str) -> str:
    """How genre spellings are compared: "Hip-Hop", "hip hop" and "hiphop" are one genre."""
    return _NOT_ALNUM.sub("", name.casefold())


class GenreQuerySet(models.QuerySet):
    def resolve(self, spelling: str) -> Genre | None:
        """The genre a folder name or tag means: its name, tag spelling or one of its aliases."""
        key = normalise(spelling)
        if not key:
            return None
        for genre in self.all():
            if key in genre.spellings():
                return genre
        return None


class Genre(models.Model):
    """A genre of the taxonomy: heads output its name, files get its tag spelling."""

    name = models.SlugField(
        max_length=64,
        unique=True,
        help_text="Lower-case identifier the model outputs, e.g. hiphop.",
    )
    tag_spelling = models.CharField(
        max_length=100, help_text='How the genre is written into tags, e.g. "Hip-Hop".'
    )
    aliases = models.CharField(
        max_length=500,
        blank=True,
        help_text="Other spellings that mean this genre (folder names, tags), separated by commas.",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="The broader genre this one belongs to, if any.",
    )

    objects = GenreQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def alias_list(self) -> list[str]:
        return [a.strip() for a in self.aliases.split(",") if a.strip()]

    def spellings(self) -> set[str]:
        return {normalise(s) for s in [self.name, self.tag_spelling, *self.alias_list()]} - {""}

    def top_level(self) -> Genre:
        """The outermost ancestor (itself when it has no parent); cycles stop at the repeat."""
        genre, seen = self, {self.pk}
        while genre.parent_id and genre.parent_id not in seen:
            seen.add(genre.parent_id)
            genre = genre.parent
        return genre


class Sample(models.Model):
    class Source(models.TextChoices):
        IMPORT = "import", "imported folder"
        UPLOAD = "upload", "user upload"
        CATALOG = "catalog", "catalog track"

    class Split(models.TextChoices):
        AUTO = "auto", "automatic"
        TRAIN = "train", "train"
        VALIDATION = "validation", "validation"
        TEST = "test", "test"

    class Status(models.TextChoices):
        PROPOSED = "proposed", "proposed"
        APPROVED = "approved", "approved"
        REJECTED = "rejected", "rejected"

    audio = models.FileField(upload_to="curation/samples/", max_length=300)
    original_name = models.CharField(max_length=300, blank=True)
    content_hash = models.CharField(
        max_length=64,
        unique=True,
        editable=False,
        help_text="sha256 of the file: one sample per audio.",
    )
    genre = models.ForeignKey(Genre, on_delete=models.PROTECT, related_name="samples")
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.IMPORT)
    source_ref = models.CharField(
        max_length=300, blank=True, help_text="Where it came from: a folder path, a track id."
    )
    artist = models.CharField(
        max_length=200, blank=True, help_text="Samples of one artist stay on one side of a split."
    )
    split = models.CharField(max_length=16, choices=Split.choices, default=Split.AUTO)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROPOSED)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # The active model's verdict, kept so the review list can sort by it.
    verdict_genre = models.CharField(max_length=64, blank=True)
    verdict_confidence = models.FloatField(null=True, blank=True)
    disagreement = models.FloatField(
        null=True,
        blank=True,
        help_text="1 - the probability the model gives the label: high means it disagrees.",
    )
    uncertainty = models.FloatField(
        null=True, blank=True, help_text="1 - the model's best confidence."
    )
    verdict_probabilities = models.JSONField(default=dict, blank=True)
    verdict_model = models.CharField(max_length=100, blank=True)
    verdict_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "genre"])]

    def __str__(self) -> str:
        return self.original_name or Path(self.audio.name).name

    @property
    def agrees(self) -> bool | None:
        if not self.verdict_genre:
            return None
        return self.verdict_genre == self.genre.name

    def relabel(self, genre: Genre) -> None:
        """A new label; the disagreement is recomputed from the stored verdict."""
        self.genre = genre
        if self.verdict_probabilities:
            self.disagreement = 1.0 - float(self.verdict_probabilities.get(genre.name, 0.0))


class ModelVersion(models.Model):
    """A trained genre head; at most one is active (none active: the bundled head is used)."""

    version = models.CharField(max_length=32, unique=True)
    model = models.CharField(max_length=100, help_text="The model string verdicts record.")
    head = models.FileField(upload_to="curation/heads/", max_length=300)
    genres = models.JSONField(default=list)
    tag_spelling = models.JSONField(default=dict)
    accuracy = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=False)
    promoted_at = models.DateTimeField(null=True, blank=True)
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="curation_one_active_version",
            )
        ]

    def __str__(self) -> str:
        return f"head-{self.version}" + (" (active)" if self.is_active else "")


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    class Feature(models.TextChoices):
        PENULTIMATE = "penultimate", "penultimate layer (200)"
        TAGGRAM = "taggram", "MSD tag scores (50)"
        BOTH = "penultimate+taggram", "penultimate + tag scores (250)"

    # Parameters, with the defaults the bundled head was trained with.
    epochs = models.PositiveIntegerField(default=300)
    learning_rate = models.FloatField(default=0.01)
    weight_decay = models.FloatField(default=1e-3)
    hidden = models.PositiveIntegerField(default=0, help_text="Hidden units; 0 is a linear head.")
    feature = models.CharField(max_length=32, choices=Feature.choices, default=Feature.PENULTIMATE)
    validation_fraction = models.FloatField(
        default=0.25, help_text="Share of each genre's automatic-split samples held out."
    )
    roll_up_subgenres = models.BooleanField(
        default=False, help_text="Train on top-level genres: subgenre samples count as parent."
    )
    seed = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    report = models.JSONField(default=dict, blank=True)
    confusion_png = models.FileField(upload_to="curation/reports/", max_length=300, blank=True)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)


class Promotion(models.Model):
    """One change of the active head: the log that roll-back walks back through."""

    version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="promotions",
        help_text="Empty: back to the bundled head.",
    )
    rollback = models.BooleanField(default=False)
    at = models.DateTimeField(auto_now_add=True)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        target = f"head-{self.version.version}" if self.version else "the bundled head"
        return f"{'rolled back to' if self.rollback else 'promoted'} {target}"


@receiver(post_delete, sender=Sample)
def _delete_sample_audio(sender, instance: Sample, **kwargs) -> None:
    # The stored copy is named by its hash and belongs to this sample alone. The cached
    # embedding stays: the same audio imported again reuses it.
    if instance.audio:
        instance.audio.storage.delete(instance.audio.name)
