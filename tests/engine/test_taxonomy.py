"""The genre taxonomy: its file, its spellings and what raw tag values mean."""

from __future__ import annotations

import json

import pytest
from mutagen.id3 import TCON

from classifier.engine.taxonomy import TAXONOMY_FILE, Taxonomy, genre_for_tag, load_taxonomy

REQUIRED_TOP_LEVEL = (
    "Blues",
    "Classical",
    "Country",
    "Electronic",
    "Folk",
    "Hip-Hop",
    "Jazz",
    "Latin",
    "Metal",
    "Pop",
    "R&B/Soul",
    "Reggae",
    "Rock",
    "World",
)


@pytest.fixture(scope="module")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.mark.parametrize(
    ("raw", "genre"),
    [
        ("Hip Hop", "Hip-Hop"),
        ("Hip-Hop", "Hip-Hop"),
        ("hiphop", "Hip-Hop"),
        ("  HIP  HOP ", "Hip-Hop"),
        ("Rap", "Hip-Hop"),
        ("(17)", "Rock"),
        ("17", "Rock"),
        ("(7)Hip-Hop", "Hip-Hop"),
        ("(0)", "Blues"),
        ("R&B", "R&B/Soul"),
        ("Rhythm & Blues", "R&B/Soul"),
        ("rhythm and blues", "R&B/Soul"),
        ("Electronica", "Electronic"),
        ("Alt. Rock", "Alternative Rock"),
        ("Alternative Rock", "Alternative Rock"),
        ("(40)", "Alternative Rock"),
        ("Hard Rock", "Hard Rock"),
        ("New Age", "New Age"),
        ("International", "World"),
        ("Stage & Screen", "Soundtrack"),
        ("Rock 'n' Roll", "Rock & Roll"),
        ("Drum'n'Bass", "Drum & Bass"),
        ("disco", "Disco"),
    ],
)
def test_raw_tag_values_map_to_one_genre(raw, genre):
    assert genre_for_tag(raw) == genre


@pytest.mark.parametrize("raw", ["", "Other", "(12)", "192", "(255)", "Nonsense Wave", "???"])
def test_unknown_or_deliberately_unmapped_values_map_to_none(raw):
    assert genre_for_tag(raw) is None


def test_pop_rock_is_ambiguous_not_both(taxonomy):
    assert taxonomy.genre_for_tag("Pop/Rock") is None
    assert taxonomy.candidates("Pop/Rock") == {"Pop", "Rock"}
    assert taxonomy.candidates("pop rock") == {"Pop", "Rock"}


def test_every_id3v1_genre_name_and_number_is_accounted_for(taxonomy):
    # The table in taxonomy.json is the ID3v1/Winamp list, in order (mutagen keeps the same).
    assert list(taxonomy.id3v1) == list(TCON.GENRES)
    assert len(taxonomy.id3v1) == 192
    for number, name in enumerate(taxonomy.id3v1):
        assert taxonomy.is_known_spelling(name), name
        assert taxonomy.candidates(f"({number})") == taxonomy.candidates(name)
        assert taxonomy.candidates(str(number)) == taxonomy.candidates(name)
    mapped = sum(bool(taxonomy.candidates(name)) for name in taxonomy.id3v1)
    assert mapped >= 175  # only joke and non-genre entries ("Other", "Primus") map to none


def test_required_top_level_genres_and_styles_under_their_parents(taxonomy):
    assert set(REQUIRED_TOP_LEVEL) <= set(taxonomy.top_level())
    for style, parent in {
        "Disco": "R&B/Soul",
        "Funk": "R&B/Soul",
        "Soul": "R&B/Soul",
        "House": "Electronic",
        "Ambient": "Electronic",
        "Techno": "Electronic",
        "Punk": "Rock",
        "Indie": "Rock",
        "Alternative Rock": "Rock",
        "Hard Rock": "Rock",
    }.items():
        assert taxonomy.parent_of(style) == parent
    for genre in taxonomy.genres:
        if genre.parent is not None:
            assert taxonomy.parent_of(genre.parent) is None  # two levels, no deeper
    assert taxonomy.with_ancestors({"House", "Jazz"}) == {"House", "Electronic", "Jazz"}


def test_the_file_is_the_one_source_and_every_genre_has_a_tag_spelling():
    data = json.loads(TAXONOMY_FILE.read_text(encoding="utf-8"))
    names = [g["name"] for g in data["genres"]]
    assert len(names) == len(set(names))
    for genre in data["genres"]:
        assert set(genre) == {"name", "tag_spelling", "parent", "aliases"}
        assert genre["tag_spelling"].strip()


def test_a_spelling_with_two_meanings_is_refused():
    data = {
        "genres": [
            {"name": "Rock", "tag_spelling": "Rock", "parent": None, "aliases": ["Guitar"]},
            {"name": "Pop", "tag_spelling": "Pop", "parent": None, "aliases": ["guitar"]},
        ]
    }
    with pytest.raises(ValueError, match="means two things"):
        Taxonomy(data)


def test_a_style_under_a_style_is_refused():
    data = {
        "genres": [
            {"name": "Rock", "tag_spelling": "Rock", "parent": None, "aliases": []},
            {"name": "Punk", "tag_spelling": "Punk", "parent": "Rock", "aliases": []},
            {"name": "Emo", "tag_spelling": "Emo", "parent": "Punk", "aliases": []},
        ]
    }
    with pytest.raises(ValueError, match="not a top-level genre"):
        Taxonomy(data)


def test_training_folder_names_are_spelled_by_the_taxonomy(taxonomy):
    spelled = {name: taxonomy.tag_spelling_for(name) for name in ("hiphop", "rnb", "drone")}
    assert spelled == {"hiphop": "Hip-Hop", "rnb": "R&B/Soul", "drone": "Drone"}
