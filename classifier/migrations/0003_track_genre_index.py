"""Track.genre_index: every genre a verdict gives a track, for the library's genre filter."""

from django.db import migrations, models

from classifier.engine.taxonomy import genre_for_tag


def index_existing(apps, schema_editor):
    """Verdicts stored before the index: their ranked genres at or above their threshold,
    the first head's names ("hiphop") in the taxonomy's ("Hip-Hop") so the filter finds them.
    primary_genre stays as that model said it: the catalog it is matched against says the same."""
    track_model = apps.get_model("classifier", "Track")
    analysed = track_model.objects.exclude(verdict=None).exclude(primary_genre="")
    for track in analysed.only("id", "verdict").iterator(chunk_size=500):
        verdict = track.verdict or {}
        threshold = verdict.get("min_confidence", 0.0)
        names: list[str] = []
        for genre in verdict.get("genres", []):
            for name in (genre.get("parent"), genre.get("name")):
                name = name and (genre_for_tag(name) or name)
                if name and name not in names and genre.get("confidence", 0.0) >= threshold:
                    names.append(name)
        if names:
            index = "|" + "|".join(names) + "|"
            track_model.objects.filter(pk=track.pk).update(genre_index=index)


class Migration(migrations.Migration):
    dependencies = [
        ("classifier", "0002_track_heartbeat_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="track",
            name="genre_index",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.RunPython(index_existing, migrations.RunPython.noop),
    ]
