"""The genre table holds the taxonomy: seeded by migration, old names renamed, staff edits kept."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from classifier.curation.models import Genre
from classifier.curation.seeding import seed_taxonomy
from classifier.engine.taxonomy import load_taxonomy

pytestmark = pytest.mark.django_db


def test_every_taxonomy_genre_is_seeded_with_its_parent():
    taxonomy = load_taxonomy()
    rows = {g.name: g for g in Genre.objects.select_related("parent")}
    for genre in taxonomy.genres:
        row = rows[genre.name]
        assert row.tag_spelling == genre.tag_spelling
        assert (row.parent.name if row.parent else None) == genre.parent
    assert rows["House"].parent.name == "Electronic"
    assert "R&B/Soul" in rows and "Hip-Hop" in rows


@pytest.mark.parametrize(
    ("spelling", "name"),
    [
        ("Hip Hop", "Hip-Hop"),
        ("hiphop", "Hip-Hop"),
        ("Rap", "Hip-Hop"),
        ("(7)", "Hip-Hop"),
        ("R&B", "R&B/Soul"),
        ("deep house", "House"),
    ],
)
def test_resolve_reads_spellings_as_the_taxonomy_does(spelling, name):
    assert Genre.objects.resolve(spelling).name == name


def test_resolve_refuses_the_ambiguous_and_the_unknown():
    assert Genre.objects.resolve("Pop/Rock") is None
    assert Genre.objects.resolve("Zydeco Punk") is None
    assert Genre.objects.resolve("  ") is None


def test_seed_genres_adds_what_is_missing_and_keeps_staff_edits():
    house = Genre.objects.get(name="House")
    house.tag_spelling, house.aliases = "House Music", "garage"
    house.save()
    Genre.objects.filter(name="Dubstep").delete()
    out = io.StringIO()
    call_command("seed_genres", stdout=out)
    assert "1 genres added" in out.getvalue()
    assert Genre.objects.get(name="Dubstep").parent.name == "Electronic"
    house.refresh_from_db()
    assert (house.tag_spelling, house.aliases) == ("House Music", "garage")
    call_command("seed_genres", stdout=io.StringIO())  # again: nothing changes
    assert Genre.objects.count() == len(load_taxonomy().genres)


def test_seeding_renames_old_names_and_merges_duplicates(tmp_path):
    from classifier.curation.services.importing import add_sample
    from tests.audiofiles import tone, write_audio

    # What an older import left: lower-case genres beside the taxonomy's.
    Genre.objects.filter(parent__name__in=["Hip-Hop", "Metal"]).update(parent=None)
    Genre.objects.filter(name__in=["Hip-Hop", "Metal"]).delete()
    hiphop = Genre.objects.create(name="hiphop", tag_spelling="Hip-Hop", aliases="rap, boom bap")
    metal = Genre.objects.create(name="metal", tag_spelling="Metal")
    rock = Genre.objects.create(name="rock", tag_spelling="Rock")  # "Rock" already exists
    odd = Genre.objects.create(name="afro-zouk-x", tag_spelling="Afro Zouk X")
    audio = [write_audio(tmp_path / f"{n}.flac", tone(0.3, seed=n), 22_050, "flac") for n in (1, 2)]
    first = add_sample(audio[0], [hiphop, rock])
    second = add_sample(audio[1], [metal, odd])
    result = seed_taxonomy(Genre)
    assert result.renamed == {"hiphop": "Hip-Hop", "metal": "Metal"}
    assert result.merged == {"rock": "Rock"}
    hiphop.refresh_from_db()
    assert hiphop.name == "Hip-Hop" and "boom bap" in hiphop.aliases
    assert first.genre_names() == ["Hip-Hop", "Rock"]
    assert second.genre_names() == ["Metal", "afro-zouk-x"]  # unknown to the taxonomy: kept
    assert not Genre.objects.filter(name="rock").exists()


@pytest.mark.postgres(
    reason="SQLite's schema editor refuses to migrate inside the test's transaction with "
    "foreign-key checks on; PostgreSQL migrates back and forth in it"
)
def test_the_migrations_rename_the_old_heads_genres_and_keep_their_samples():
    """Back to before the taxonomy, a sample labelled "hiphop", then forward again."""
    executor = MigrationExecutor(connection)
    executor.migrate([("curation", "0002_seed_genres")])
    old = executor.loader.project_state([("curation", "0002_seed_genres")]).apps
    old_genre, old_sample = old.get_model("curation", "Genre"), old.get_model("curation", "Sample")
    # Undone, the seeding leaves the rows as they are; make one as the old head named it.
    old_genre.objects.filter(name="Hip-Hop").update(name="hiphop")
    old_sample.objects.create(
        audio="curation/samples/x.flac",
        content_hash="a" * 64,
        genre=old_genre.objects.get(name="hiphop"),
    )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes("curation"))
    new = executor.loader.project_state(executor.loader.graph.leaf_nodes("curation")).apps
    sample = new.get_model("curation", "Sample").objects.get(content_hash="a" * 64)
    assert [g.name for g in sample.genres.all()] == ["Hip-Hop"]
    assert not new.get_model("curation", "Genre").objects.filter(name="hiphop").exists()
    assert new.get_model("curation", "Genre").objects.filter(name="House").exists()
