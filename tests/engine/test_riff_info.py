"""A WAV's genre in its RIFF INFO list (IGNR), which FFmpeg-based readers and Windows show,
kept in step with its ID3 chunk; the audio untouched."""

from __future__ import annotations

import struct
from pathlib import Path

import av
import pytest

from classifier.engine.filetags import read_tags, write_genres
from classifier.engine.riffinfo import read_info, set_genre
from tests.audiofiles import make_audio_file


def ffmpeg_genre(path: Path) -> str | None:
    with av.open(str(path)) as container:
        return container.metadata.get("genre")


def chunks(path: Path) -> list[tuple[bytes, bytes]]:
    data, found, position = path.read_bytes(), [], 12
    while position + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[position : position + 8])
        found.append((kind, data[position + 8 : position + 8 + length]))
        position += 8 + length + (length & 1)
    return found


def data_chunk(path: Path) -> bytes:
    return next(body for kind, body in chunks(path) if kind == b"data")


def with_info(path: Path, fields: dict[bytes, bytes]) -> Path:
    """`path` with a LIST/INFO chunk of `fields` appended (as other tools write it)."""
    body = b"INFO" + b"".join(
        k + struct.pack("<I", len(v)) + v + b"\x00" * (len(v) & 1) for k, v in fields.items()
    )
    data = bytearray(path.read_bytes()) + b"LIST" + struct.pack("<I", len(body)) + body
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    return path


def test_written_genres_are_in_id3_and_in_ignr_for_ffmpeg(tmp_path):
    path = make_audio_file(tmp_path, "wav")
    audio = data_chunk(path)
    write_genres(path, ["Rock", "Blues"], "replace")
    assert ffmpeg_genre(path) == "Rock; Blues"  # FFmpeg reads INFO, as Windows does
    assert read_tags(path).genres == ["Rock", "Blues"]
    with path.open("rb") as handle:
        assert read_info(handle)[b"IGNR"] == "Rock; Blues"
    assert data_chunk(path) == audio


def test_rewriting_keeps_one_info_list_and_its_other_fields(tmp_path):
    path = with_info(make_audio_file(tmp_path, "wav"), {b"INAM": b"Song\x00", b"IGNR": b"Pop\x00"})
    audio = data_chunk(path)
    assert read_tags(path).genres == ["Pop"]  # read from IGNR when the ID3 chunk has none
    write_genres(path, ["Jazz"], "replace")
    write_genres(path, ["Jazz", "Soul"], "replace")
    with path.open("rb") as handle:
        info = read_info(handle)
    assert info[b"INAM"] == "Song" and info[b"IGNR"] == "Jazz; Soul"
    assert [kind for kind, _ in chunks(path)].count(b"LIST") == 1  # the others retired
    assert ffmpeg_genre(path) == "Jazz; Soul"
    assert data_chunk(path) == audio


def test_a_wav_tagged_in_id3_only_gets_ignr_when_its_genres_are_written(tmp_path):
    path = make_audio_file(tmp_path, "wav")
    from mutagen.id3 import TCON
    from mutagen.wave import WAVE

    wave = WAVE(path)
    wave.add_tags()
    wave.tags.add(TCON(encoding=3, text=["Folk"]))
    wave.save()
    with path.open("rb") as handle:
        assert b"IGNR" not in read_info(handle)
    assert not write_genres(path, ["Folk"], "fill").changed  # fill leaves a tagged file alone
    assert write_genres(path, ["Folk", "Country"], "merge").changed
    assert ffmpeg_genre(path) == "Folk; Country"
    assert read_tags(path).genres == ["Folk", "Country"]


def test_an_info_list_before_the_audio_is_retired_not_moved(tmp_path):
    path = make_audio_file(tmp_path, "wav")
    data = bytearray(path.read_bytes())
    body = b"INFOIGNR" + struct.pack("<I", 4) + b"Pop\x00"
    data[12:12] = b"LIST" + struct.pack("<I", len(body)) + body  # right after the header
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    audio = data_chunk(path)
    with path.open("r+b") as handle:
        set_genre(handle, "Metal")
        assert read_info(handle)[b"IGNR"] == "Metal"
    assert path.read_bytes()[12:16] == b"JUNK"
    assert data_chunk(path) == audio
    assert ffmpeg_genre(path) == "Metal"


@pytest.mark.parametrize("fmt", ["aiff", "flac"])
def test_other_formats_get_no_info_list(tmp_path, fmt):
    path = make_audio_file(tmp_path, fmt)
    write_genres(path, ["Rock"], "replace")
    assert b"IGNR" not in path.read_bytes()
