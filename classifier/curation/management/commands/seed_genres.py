"""`manage.py seed_genres`: add the taxonomy's genres that the genre table lacks."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from classifier.curation.models import Genre
from classifier.curation.seeding import seed_taxonomy


class Command(BaseCommand):
    help = (
        "Add every genre of the taxonomy (classifier/engine/taxonomy.json) that has no row yet, "
        "and rename old rows that mean one (e.g. hiphop -> Hip-Hop); rows that already carry a "
        "taxonomy name are left as staff edited them."
    )

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            result = seed_taxonomy(Genre)
        self.stdout.write(result.summary())
