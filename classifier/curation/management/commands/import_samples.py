"""`manage.py import_samples DIR`: add a labelled folder (DIR/<genre>/<files>, or DIR/labels.csv
with several genres per file) to the dataset."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from classifier.curation.models import Sample
from classifier.curation.services import CurationError
from classifier.curation.services.importing import import_folder
from classifier.engine.errors import EngineError


class Command(BaseCommand):
    help = (
        "Import DIR/<genre>/<audio files>, or the files DIR/labels.csv names with their genres, "
        "as labelled samples; audio already in the dataset (same content) is skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", metavar="DIR", type=Path)
        parser.add_argument(
            "--approve",
            action="store_true",
            help="mark the new samples approved (default: proposed, for review)",
        )
        parser.add_argument("--source", choices=Sample.Source.values, default=Sample.Source.IMPORT)
        parser.add_argument(
            "--verdicts",
            choices=("now", "queue", "no"),
            default="now",
            help="the active model's verdicts on the new samples: computed here "
            "(default), queued to a worker, or not at all",
        )

    def handle(
        self, *args, directory: Path, approve: bool, source: str, verdicts: str, **options
    ) -> None:
        status = Sample.Status.APPROVED if approve else Sample.Status.PROPOSED
        try:
            result = import_folder(
                directory, status=status, source=source, on_progress=self.progress
            )
        except CurationError as exc:
            raise CommandError(str(exc)) from None
        for message in result.messages():
            self.stderr.write(message)
        self.stdout.write(f"{directory}: {result.summary()}")
        if result.created and verdicts != "no":
            self.verdicts(result.created, verdicts)

    def progress(self, done: int, total: int) -> None:
        if done % 25 == 0 or done == total:
            self.stderr.write(f"imported {done}/{total}")

    def verdicts(self, ids: list[int], how: str) -> None:
        from classifier.curation.services.verdicts import refresh_verdicts
        from classifier.curation.tasks import queue_verdict_refresh

        if how == "queue":
            if not queue_verdict_refresh(ids):
                self.stderr.write("the task queue cannot be reached: no verdicts queued")
            return
        samples = Sample.objects.filter(pk__in=ids).prefetch_related("genres").order_by("pk")
        try:
            judged = refresh_verdicts(samples, on_progress=self.analysed)
        except EngineError as exc:
            self.stderr.write(f"no verdicts: {exc}")
            return
        self.stdout.write(f"verdicts of the active model on {judged} new samples")

    def analysed(self, done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            self.stderr.write(f"analysed {done}/{total}")
