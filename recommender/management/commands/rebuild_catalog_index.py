"""python manage.py rebuild_catalog_index: rebuild the nearest-neighbour index from the database.

Needed only after the index folder was lost or damaged, or to drop the rows of excluded and
re-analysed tracks (searches already filter those out through the database).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from recommender.services.indexing import rebuild_index


class Command(BaseCommand):
    help = "Rebuild the catalog's nearest-neighbour index from the analysed tracks."

    def handle(self, *args: object, **options: object) -> None:
        counts = rebuild_index()
        total = sum(counts.values())
        detail = ", ".join(f"{genre} {n}" for genre, n in sorted(counts.items()) if n)
        self.stdout.write(f"index rebuilt: {total} tracks ({detail or 'none'})")
