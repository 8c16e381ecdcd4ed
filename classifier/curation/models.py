"""The curated dataset: genres, labelled samples, training runs and the model versions they make."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver

from classifier.engine.taxonomy import load_taxonomy
from classifier.engine.taxonomy import normalise as taxonomy_normalise


def normalise(name: str) -> str:
    """How genre spellings are compared, as the taxonomy compares them: "Hip-Hop", "hip hop"
    and "hiphop" are one genre, "R&B" and "R and B" one spelling."""
    return taxonomy_normalise(name.casefold())


class GenreQuerySet(models.QuerySet):
    def resolve(self, spelling: str) -> Genre | None:
        """The genre a folder name or tag means: a row's own name, tag spelling or alias first
        (staff edits win), then the taxonomy's reading of it (its aliases, ID3v1 numbers such
        as "(7)"), if that names exactly one genre that has a row."""
        key = normalise(spelling)
        if not spelling.strip():
            return None
        genres = list(self.all())
        for genre in genres:
            if key and key in genre.spellings():
                return genre
        names = self.taxonomy_candidates(spelling)
        if len(names) == 1:
            found = next((g for g in genres if g.name in names), None)
            # A taxonomy genre without a row (a table flushed, a row deleted) gets it back.
            return found or self.from_taxonomy(next(iter(names)))
        return None

    def from_taxonomy(self, name: str) -> Genre:
        """The row of taxonomy genre `name`, made as taxonomy.json has it where absent."""
        known = load_taxonomy().genre(name)
        parent = self.from_taxonomy(known.parent) if known.parent else None
        row, _ = self.get_or_create(
            name=name,
            defaults={
                "tag_spelling": known.tag_spelling,
                "aliases": ", ".join(known.aliases)[:500],
                "parent": parent,
            },
        )
        return row

    @staticmethod
    def taxonomy_candidates(spelling: str) -> frozenset[str]:
        """The taxonomy genres a spelling may mean (several: ambiguous, like "Pop/Rock")."""
        return load_taxonomy().candidates(spelling)


class Genre(models.Model):
    """A genre of the taxonomy: heads output its name, files get its tag spelling."""

    name = models.CharField(
        max_length=64,
        unique=True,
        help_text='The name heads output and the library shows, e.g. "Hip-Hop", "R&B/Soul".',
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
    genres = models.ManyToManyField(
        Genre, related_name="samples", help_text="Every genre that applies to the audio."
    )
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
    verdict_multi_label = models.BooleanField(
        default=False, help_text="The verdict's head gives each genre its own probability."
    )
    verdict_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_name or Path(self.audio.name).name

    def genre_names(self) -> list[str]:
        """The names of the sample's genres, sorted (prefetch `genres` for lists of samples)."""
        return sorted(g.name for g in self.genres.all())

    @property
    def agrees(self) -> bool | None:
        if not self.verdict_genre:
            return None
        return self.verdict_genre in self.genre_names()

    def relabel(self, genres: Iterable[Genre]) -> None:
        """New labels (the sample must be saved); the disagreement follows the stored verdict."""
        genres = list(genres)
        self.genres.set(genres)
        if self.verdict_probabilities:
            self.disagreement = disagreement(
                self.verdict_probabilities, [g.name for g in genres], self.verdict_multi_label
            )


def disagreement(probabilities: dict[str, float], labels: list[str], multi_label: bool) -> float:
    """How much the model disagrees with a sample's labels, from 0 to 1.

    Multi-label head: 1 - the probability of the label it doubts most (each label is its own
    yes/no). Softmax head: 1 - the probability it gives all the labels together (one genre per
    track, so two labels share the mass).
    """
    said = [float(probabilities.get(label, 0.0)) for label in labels]
    if not said:
        return 1.0
    return 1.0 - (min(said) if multi_label else min(1.0, sum(said)))


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

    # Parameters of the multi-label head, with the defaults of the default head's trainer.
    epochs = models.PositiveIntegerField(
        default=200, verbose_name="iterations", help_text="L-BFGS iterations of each fit."
    )
    learning_rate = models.FloatField(
        default=0.01, help_text="Not used by the multi-label head (L-BFGS); kept for old runs."
    )
    weight_decay = models.FloatField(
        default=1e-2,
        verbose_name="L2 penalty",
        help_text="On the weights of the standardised features, per genre.",
    )
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
