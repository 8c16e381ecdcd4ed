"""Undoing a genre write puts every tag value back exactly, in every format.

Each file is what an encoder writes, decorated as a library has it (title, artist, comment,
cover) and given genres the way another tagger would; the whole tag block is read with mutagen
before the write and after the undo and compared value for value, with the audio packets.
"""

from __future__ import annotations

from pathlib import Path

import mutagen
import pytest
from mutagen.id3 import TCON, TXXX
from mutagen.mp4 import MP4FreeForm

from classifier.engine import tagrestore
from classifier.engine.errors import TagBoundsError, TagError
from classifier.engine.filetags import read_tags, write_genres
from classifier.engine.riffinfo import set_genre
from tests.audiofiles import FORMATS, make_audio_file
from tests.engine.bombs import many_frames_tag, mp3_with_tag
from tests.tagfiles import ID3_FORMATS, decorate, packet_digest, set_genres, whole_tags

ALL_FORMATS = list(FORMATS)
PROVENANCE = {"model": "musicnn-msd+genres-abc123"}


def assert_undo_is_exact(path: Path) -> None:
    before, audio = whole_tags(path), packet_digest(path)
    snapshot = tagrestore.take(path)
    write_genres(path, ["Jazz", "Blues"], "replace", provenance=PROVENANCE, id3_version=None)
    assert read_tags(path).genres == ["Jazz", "Blues"]
    assert whole_tags(path) != before  # the write did change something to undo
    tagrestore.restore(path, snapshot)
    assert whole_tags(path) == before
    assert packet_digest(path) == audio
    assert tagrestore.same_values(tagrestore.take(path), snapshot)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_undo_brings_back_a_decorated_files_genres_exactly(tmp_path: Path, fmt: str) -> None:
    path = make_audio_file(tmp_path, fmt, seconds=0.5)
    decorate(path, fmt)
    set_genres(path, fmt, ["Rock", "Indie"])
    assert_undo_is_exact(path)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_undo_takes_genres_away_from_a_file_that_had_none(tmp_path: Path, fmt: str) -> None:
    path = make_audio_file(tmp_path, fmt, seconds=0.5)
    decorate(path, fmt)
    assert read_tags(path).genres == []
    assert_undo_is_exact(path)
    assert read_tags(path).genres == []


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_undo_on_a_file_straight_from_the_encoder(tmp_path: Path, fmt: str) -> None:
    # WAV and AIFF carry no tag at all: the write adds an ID3 chunk, the undo removes it.
    path = make_audio_file(tmp_path, fmt, seconds=0.5)
    assert_undo_is_exact(path)


@pytest.mark.parametrize("fmt", ID3_FORMATS)
def test_undo_keeps_an_id3v23_file_in_version_2_3_with_its_old_provenance(
    tmp_path: Path, fmt: str
) -> None:
    path = make_audio_file(tmp_path, fmt, seconds=0.5)
    decorate(path, fmt)
    audio = mutagen.File(path)
    audio.tags.add(TCON(encoding=1, text=["Shoegaze"]))
    audio.tags.add(TXXX(encoding=0, desc="GENREWEB_MODEL", text=["an older model"]))
    audio.save(v2_version=3)
    assert_undo_is_exact(path)
    assert mutagen.File(path).tags.version[:2] == (2, 3)


def test_undo_restores_vorbis_comments_in_their_old_order(tmp_path: Path) -> None:
    path = make_audio_file(tmp_path, "flac", seconds=0.5)
    audio = mutagen.File(path)
    audio.tags.extend([("GENRE", "Folk"), ("TITLE", "a"), ("genre", "Celtic"), ("ARTIST", "b")])
    audio.save()
    assert_undo_is_exact(path)


def test_undo_restores_an_m4as_provenance_atoms(tmp_path: Path) -> None:
    path = make_audio_file(tmp_path, "m4a", seconds=0.5)
    audio = mutagen.File(path)
    audio.tags["\xa9gen"] = ["Hip-Hop"]
    audio.tags["----:com.genreweb:model"] = [MP4FreeForm(b"old", dataformat=0)]
    audio.save()
    assert_undo_is_exact(path)


def test_undo_restores_a_wavs_riff_genre_bytes(tmp_path: Path) -> None:
    path = make_audio_file(tmp_path, "wav", seconds=0.5)
    with path.open("r+b") as handle:
        set_genre(handle, b"Tango\xe9\x00")  # Latin-1, as old Windows tools wrote it
    assert_undo_is_exact(path)


def test_a_snapshot_is_refused_on_a_file_of_another_format(tmp_path: Path) -> None:
    flac = make_audio_file(tmp_path, "flac", seconds=0.5)
    mp3 = make_audio_file(tmp_path, "mp3", seconds=0.5)
    data = mp3.read_bytes()
    with pytest.raises(TagError, match="no longer a flac file"):
        tagrestore.restore(mp3, tagrestore.take(flac))
    assert mp3.read_bytes() == data


def test_a_tag_bomb_is_refused_before_mutagen_parses_it(tmp_path: Path) -> None:
    mp3 = make_audio_file(tmp_path, "mp3", seconds=0.5)
    bomb = mp3_with_tag(mp3, many_frames_tag(100_000), tmp_path / "frames.mp3")
    with pytest.raises(TagBoundsError):
        tagrestore.take(bomb)
