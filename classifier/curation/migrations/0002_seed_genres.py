"""Seed the taxonomy with the default head's genres and their tag spellings."""
from django.db import migrations

# A copy, not an import: a migration must not change when classifier.engine.labels does.
GENRES = {
    "blues": "Blues", "classical": "Classical", "country": "Country", "disco": "Disco",
    "hiphop": "Hip-Hop", "jazz": "Jazz", "metal": "Metal", "pop": "Pop",
    "reggae": "Reggae", "rock": "Rock",
}
ALIASES = {"hiphop": "hip hop, rap", "classical": "classic"}


def seed(apps, schema_editor):
    Genre = apps.get_model("curation", "Genre")
    for name, spelling in GENRES.items():
        Genre.objects.get_or_create(
            name=name, defaults={"tag_spelling": spelling, "aliases": ALIASES.get(name, "")})


def unseed(apps, schema_editor):
    Genre = apps.get_model("curation", "Genre")
    Genre.objects.filter(name__in=GENRES, samples__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("curation", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
