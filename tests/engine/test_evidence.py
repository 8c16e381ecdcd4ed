"""The evidence in a file's own tags: genre values split and mapped to the taxonomy (unknown
spellings kept as written), album, album artist and artist, from real files of every format
written with mutagen; and hostile values that must give clear results in bounded time."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TPE1, TPE2, Encoding
from mutagen.mp4 import MP4
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from classifier.engine.evidence import (
    MAX_VALUE_CHARS,
    MAX_VALUES,
    parse_genres,
    parse_genres_noted,
    read_evidence,
    restrict,
)
from classifier.engine.filetags import read_tags, write_genres
from tests.audiofiles import make_audio_file


def mapped(values: list[str]) -> list[tuple[str, set[str]]]:
    return [(v.raw, set(v.genres)) for v in parse_genres(values)]


# ---------------------------------------------------------------- splitting and mapping


def test_known_spellings_with_a_slash_stay_one_value():
    assert mapped(["R&B/Soul"]) == [("R&B/Soul", {"R&B/Soul"})]
    raw, genres = mapped(["Pop/Rock"])[0]
    assert raw == "Pop/Rock" and genres == {"Pop", "Rock"}  # ambiguous: candidates


def test_separators_split_where_the_parts_are_genres():
    assert mapped(["Rock; Jazz"]) == [("Rock", {"Rock"}), ("Jazz", {"Jazz"})]
    assert mapped(["Folk/Blues"]) == [("Folk", {"Folk"}), ("Blues", {"Blues"})]
    assert mapped(["Reggae, Blues"]) == [("Reggae", {"Reggae"}), ("Blues", {"Blues"})]
    assert mapped(["Jazz\x00Blues"]) == [("Jazz", {"Jazz"}), ("Blues", {"Blues"})]
    assert mapped(["Pop/Rock; Rap"])[1] == ("Rap", {"Hip-Hop"})


def test_unknown_spellings_are_kept_as_written_and_not_cut():
    assert mapped(["AC/DC"]) == [("AC/DC", set())]
    assert mapped(["Zydeco Doom, Live"]) == [("Zydeco Doom, Live", set())]
    assert mapped(["Rock, Nerdcore"]) == [("Rock", {"Rock"}), ("Nerdcore", set())]


def test_id3v1_numbers_map_and_out_of_range_ones_are_unknown():
    assert mapped(["(17)"]) == [("(17)", {"Rock"})]
    assert mapped(["17"]) == [("17", {"Rock"})]
    assert mapped(["(17)Rock"]) == [("(17)Rock", {"Rock"})]
    assert mapped(["(255)"]) == [("(255)", set())]
    assert mapped(["(99999)"]) == [("(99999)", set())]


def test_duplicates_count_once():
    assert mapped(["Hip Hop", "hip-hop", "HipHop"]) == [("Hip Hop", {"Hip-Hop"})]


def test_restrict_maps_a_style_the_head_lacks_to_its_parent():
    sets = [v.genres for v in parse_genres(["Hard Rock", "Pop/Rock", "Nerdcore"])]
    assert restrict(sets, ["Rock", "Jazz"]) == [frozenset({"Rock"}), frozenset({"Rock"})]


# ---------------------------------------------------------------- hostile values


def test_an_absurdly_long_value_is_read_in_part_and_reported_unknown():
    started = time.monotonic()
    values, notes = parse_genres_noted(["x" * 5_000_000])
    assert time.monotonic() - started < 1.0
    assert len(values) == 1 and not values[0].known
    assert len(values[0].raw) == MAX_VALUE_CHARS + 1 and values[0].raw.endswith("…")
    assert "read in part" in notes[0]


def test_thousands_of_values_are_bounded():
    started = time.monotonic()
    values, notes = parse_genres_noted([f"Genre {n}" for n in range(100_000)])
    assert time.monotonic() - started < 1.0
    assert len(values) == MAX_VALUES and "more genre values were not read" in notes[0]
    values, notes = parse_genres_noted(["; ".join(["Rock"] * 100_000)])
    assert [v.raw for v in values] == ["Rock"]


def test_control_characters_and_odd_text_never_break_the_mapping():
    values = parse_genres(["Rock\x01", "\ufeffJazz", "Ã©lectro", "\udcff", "   ", ""])
    assert ("Rock\ufffd", {"Rock"}) in [(v.raw, set(v.genres)) for v in values]
    assert {"Jazz"} in [set(v.genres) for v in values]
    assert all(not v.raw.isspace() for v in values)


# ---------------------------------------------------------------- real files


def test_mp3_tcon_with_several_values_and_numbers(tmp_path):
    path = make_audio_file(tmp_path, "mp3")
    tags = ID3()
    tags.add(TCON(encoding=Encoding.UTF8, text=["(17)", "Pop/Rock", "Chiptune Noir", "(240)"]))
    tags.add(TPE1(encoding=Encoding.UTF8, text=["Someone"]))
    tags.add(TPE2(encoding=Encoding.UTF8, text=["Various Artists"]))
    tags.add(TALB(encoding=Encoding.UTF8, text=["Live at Home"]))
    tags.save(path)
    found = read_evidence(path)
    assert [set(s) for s in found.genre_sets()] == [{"Rock"}, {"Pop", "Rock"}]
    assert found.unknown()[0] == "Chiptune Noir" and len(found.unknown()) == 2  # (240): none
    assert (found.artist, found.album, found.album_artist) == (
        "Someone",
        "Live at Home",
        "Various Artists",
    )
    assert found.album_key() == ("various artists", "live at home")


def test_mp3_latin1_id3v23_joined_genres(tmp_path):
    path = make_audio_file(tmp_path, "mp3")
    tags = ID3()
    tags.add(TCON(encoding=Encoding.LATIN1, text=["Electrónica; Jazz"]))
    tags.save(path, v2_version=3)
    assert [set(s) for s in read_evidence(path).genre_sets()][-1] == {"Jazz"}


@pytest.mark.parametrize(("fmt", "kind"), [("flac", FLAC), ("ogg", OggVorbis), ("opus", OggOpus)])
def test_vorbis_genre_fields(tmp_path, fmt, kind):
    path = make_audio_file(tmp_path, fmt)
    audio = kind(path)
    audio["GENRE"] = ["R&B/Soul", "Folk/Blues", "Dungeon Synth"]
    audio["ALBUM"] = ["Night"]
    audio["ALBUMARTIST"] = ["The Band"]
    audio["ARTIST"] = ["The Band feat. X"]
    audio.save()
    found = read_evidence(path)
    assert [set(s) for s in found.genre_sets()] == [{"R&B/Soul"}, {"Folk"}, {"Blues"}]
    assert found.unknown() == ["Dungeon Synth"]
    assert found.album_key() == ("the band", "night")
    assert read_tags(path).album_artist == "The Band"


def test_mp4_genre_atom(tmp_path):
    path = make_audio_file(tmp_path, "m4a")
    audio = MP4(path)
    audio["\xa9gen"] = ["Hip Hop", "Jazz"]
    audio["\xa9alb"] = ["Blue"]
    audio["aART"] = ["Trio"]
    audio.save()
    found = read_evidence(path)
    assert [set(s) for s in found.genre_sets()] == [{"Hip-Hop"}, {"Jazz"}]
    assert (found.album, found.album_artist) == ("Blue", "Trio")


def test_wav_riff_info_ignr(tmp_path):
    path = make_audio_file(tmp_path, "wav")
    body = b"INFO" + b"IGNR" + struct.pack("<I", 12) + b"Reggae;Rock\x00"
    data = bytearray(path.read_bytes()) + b"LIST" + struct.pack("<I", len(body)) + body
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    assert [set(s) for s in read_evidence(path).genre_sets()] == [{"Reggae"}, {"Rock"}]
    wave = WAVE(path)
    wave.add_tags()
    wave.tags.add(TCON(encoding=Encoding.UTF8, text=["Blues"]))
    wave.save()
    assert [set(s) for s in read_evidence(path).genre_sets()][0] == {"Blues"}


def test_an_empty_album_name_is_no_album(tmp_path):
    path = make_audio_file(tmp_path, "flac")
    audio = FLAC(path)
    audio["ALBUM"] = ["   "]
    audio["ARTIST"] = ["A"]
    audio.save()
    found = read_evidence(path)
    assert found.album is None and found.album_key() is None and found.artist_key() == "a"


def test_genreweb_s_own_genres_are_not_evidence(tmp_path):
    path = make_audio_file(tmp_path, "mp3")
    write_genres(path, ["Jazz"], "replace", provenance={"model": "m", "confidence": "0.9"})
    found = read_evidence(path)
    assert found.genre_sets() == [] and "written by Genreweb" in found.notes[0]


def test_unreadable_tags_give_no_evidence_and_a_note(tmp_path):
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + b"\x00" * 64)
    found = read_evidence(path)
    assert found.values == [] and found.notes and found.notes[0].startswith("tags not read")


def test_a_file_that_does_not_exist_gives_a_note(tmp_path: Path):
    assert read_evidence(tmp_path / "gone.flac").notes
