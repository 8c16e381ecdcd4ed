"""Genre names as the taxonomy spells them; several genres per sample; multi-label training."""

from django.db import migrations, models


def copy_genre_to_genres(apps, schema_editor):
    Sample = apps.get_model("curation", "Sample")
    through = Sample.genres.through
    through.objects.bulk_create(
        [through(sample_id=pk, genre_id=genre) for pk, genre in Sample.objects.values_list("pk", "genre_id")]
    )


def copy_genres_to_genre(apps, schema_editor):
    # Back to one genre per sample: the first of each sample's genres.
    Sample = apps.get_model("curation", "Sample")
    for sample in Sample.objects.all():
        first = sample.genres.order_by("pk").first()
        if first is not None:
            Sample.objects.filter(pk=sample.pk).update(genre=first)


class Migration(migrations.Migration):
    dependencies = [("curation", "0002_seed_genres")]

    operations = [
        migrations.AlterField(
            model_name="genre",
            name="name",
            field=models.CharField(
                help_text='The name heads output and the library shows, e.g. "Hip-Hop", "R&B/Soul".',
                max_length=64,
                unique=True,
            ),
        ),
        migrations.RemoveIndex(model_name="sample", name="curation_sa_status_8ec274_idx"),
        # related_name "+" while the old foreign key still owns "samples".
        migrations.AddField(
            model_name="sample",
            name="genres",
            field=models.ManyToManyField(related_name="+", to="curation.genre"),
        ),
        migrations.RunPython(copy_genre_to_genres, migrations.RunPython.noop),
        # Reversed, the old column comes back empty first; copy_genres_to_genre fills it.
        migrations.RunPython(migrations.RunPython.noop, copy_genres_to_genre),
        migrations.RemoveField(model_name="sample", name="genre"),
        migrations.AlterField(
            model_name="sample",
            name="genres",
            field=models.ManyToManyField(
                help_text="Every genre that applies to the audio.",
                related_name="samples",
                to="curation.genre",
            ),
        ),
        migrations.AddField(
            model_name="sample",
            name="verdict_multi_label",
            field=models.BooleanField(
                default=False,
                help_text="The verdict's head gives each genre its own probability.",
            ),
        ),
        migrations.AlterField(
            model_name="trainingrun",
            name="epochs",
            field=models.PositiveIntegerField(
                default=200, help_text="L-BFGS iterations of each fit.", verbose_name="iterations"
            ),
        ),
        migrations.AlterField(
            model_name="trainingrun",
            name="learning_rate",
            field=models.FloatField(
                default=0.01,
                help_text="Not used by the multi-label head (L-BFGS); kept for old runs.",
            ),
        ),
        migrations.AlterField(
            model_name="trainingrun",
            name="weight_decay",
            field=models.FloatField(
                default=0.01,
                help_text="On the weights of the standardised features, per genre.",
                verbose_name="L2 penalty",
            ),
        ),
    ]
