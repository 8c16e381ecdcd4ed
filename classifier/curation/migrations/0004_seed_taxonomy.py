"""Seed the taxonomy's genres; rename the old head's lower-case genres to the names they mean."""

from django.db import migrations

from classifier.curation.seeding import seed_taxonomy


def seed(apps, schema_editor):
    seed_taxonomy(apps.get_model("curation", "Genre"))


class Migration(migrations.Migration):
    dependencies = [("curation", "0003_multi_genre")]
    # Leaving it undone keeps the rows: samples point at them, and staff may have edited them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
