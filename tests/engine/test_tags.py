"""Genre tags written with real mutagen into real files of every supported format.

Each test encodes a short tone with tests/audiofiles.py, so the files are what an encoder
(FFmpeg through PyAV) really writes, and checks the result through mutagen and PyAV directly
rather than only through classifier.engine.filetags itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import mutagen
import pytest
from mutagen.flac import Picture
from mutagen.id3 import ID3

from classifier.engine.errors import TagError
from classifier.engine.filetags import read_tags, write_genres
from tests.audiofiles import FORMATS, make_audio_file
from tests.conftest import REPO
from tests.tagfiles import COVER, ID3_FORMATS, VORBIS_FORMATS
from tests.tagfiles import decorate as _decorate
from tests.tagfiles import family as _family
from tests.tagfiles import packet_digest as _packet_digest
from tests.tagfiles import set_genres as _set_genres

ALL_FORMATS = list(FORMATS)
PROVENANCE = {"model": "musicnn-msd+gtzan-abc123", "confidence": "0.87"}


@pytest.fixture(params=ALL_FORMATS)
def fmt(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def song(tmp_path: Path, fmt: str) -> Path:
    return make_audio_file(tmp_path, fmt, seconds=1.0)


# ---------------------------------------------------------------- helpers reading raw tags


def _tags(path: Path):
    return mutagen.File(path).tags


def _raw_genres(path: Path, fmt: str) -> list[str]:
    tags = _tags(path)
    if _family(fmt) == "id3":
        return [text for frame in tags.getall("TCON") for text in frame.text]
    if _family(fmt) == "vorbis":
        return [value for key, value in tags if key.lower() == "genre"]
    return list(tags["\xa9gen"])


def _cover(path: Path, fmt: str) -> bytes:
    audio = mutagen.File(path)
    if _family(fmt) == "id3":
        return audio.tags.getall("APIC")[0].data
    if fmt == "flac":
        return audio.pictures[0].data
    if _family(fmt) == "vorbis":
        return Picture(base64.b64decode(audio.tags["metadata_block_picture"][0])).data
    return bytes(audio.tags["covr"][0])


def _others(path: Path, fmt: str) -> dict:
    """Every tag except the genres and Genreweb's own fields, as comparable values."""
    audio = mutagen.File(path)
    if _family(fmt) == "id3":
        return {
            key: vars(frame)
            for key, frame in audio.tags.items()
            if key != "TCON" and not key.startswith("TXXX:GENREWEB_")
        }
    if _family(fmt) == "vorbis":
        comments = sorted(
            (key.lower(), value)
            for key, value in audio.tags
            if key.lower() != "genre" and not key.upper().startswith("GENREWEB_")
        )
        pictures = [vars(picture) for picture in getattr(audio, "pictures", [])]
        return {"comments": comments, "pictures": pictures}
    return {
        key: [
            (bytes(value), getattr(value, "imageformat", None))
            if isinstance(value, bytes)
            else value
            for value in values
        ]
        for key, values in audio.tags.items()
        if key != "\xa9gen" and not key.startswith("----:com.genreweb:")
    }


def _decoded_digest(path: Path) -> tuple[str, int]:
    """sha256 of the decoded samples at the stream's own rate and sample format, and their count."""
    digest, samples = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            digest.update(f"{frame.format.name}/{frame.sample_rate}/{frame.layout.name}".encode())
            digest.update(frame.to_ndarray().tobytes())
            samples += frame.samples
    return digest.hexdigest(), samples


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# ---------------------------------------------------------------- round trips


def test_round_trip_in_every_format(song: Path, fmt: str) -> None:
    result = write_genres(song, ["Rock", "Blues"])

    assert (result.changed, result.before, result.after) == (True, [], ["Rock", "Blues"])
    assert read_tags(song).genres == ["Rock", "Blues"]
    assert read_tags(song).format == fmt
    assert _raw_genres(song, fmt) == ["Rock", "Blues"]


def test_mp3_holds_one_id3v24_tcon_frame_with_two_values(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "mp3", seconds=1.0)
    write_genres(song, ["Rock", "Blues"])

    tags = ID3(song)
    assert tags.version == (2, 4, 0)
    assert [frame.text for frame in tags.getall("TCON")] == [["Rock", "Blues"]]


@pytest.mark.parametrize("fmt", ID3_FORMATS)
def test_id3v23_option_joins_the_genres_and_saves_version_2_3(tmp_path: Path, fmt: str) -> None:
    song = make_audio_file(tmp_path, fmt, seconds=1.0)
    write_genres(song, ["Rock", "Blues"], id3_version=3)

    tags = _tags(song)
    assert tags.version == (2, 3, 0)
    assert [frame.text for frame in tags.getall("TCON")] == [["Rock; Blues"]]
    assert read_tags(song).genres == ["Rock", "Blues"]
    if fmt == "mp3":
        assert ID3(song).version == (2, 3, 0)


def test_id3v23_separator_is_configurable(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "mp3", seconds=1.0)
    write_genres(song, ["Rock", "Blues"], id3_version=3, id3_separator=" / ")

    assert ID3(song)["TCON"].text == ["Rock / Blues"]
    assert read_tags(song, id3_separator=" / ").genres == ["Rock", "Blues"]


@pytest.mark.parametrize("fmt", VORBIS_FORMATS)
def test_vorbis_comments_get_one_genre_field_per_genre(tmp_path: Path, fmt: str) -> None:
    song = make_audio_file(tmp_path, fmt, seconds=1.0)
    write_genres(song, ["Rock", "Blues"])

    fields = [(key, value) for key, value in _tags(song) if key.lower() == "genre"]
    assert fields == [("GENRE", "Rock"), ("GENRE", "Blues")]


def test_m4a_genre_atom_is_a_list(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "m4a", seconds=1.0)
    write_genres(song, ["Rock", "Blues"])

    assert mutagen.File(song).tags["\xa9gen"] == ["Rock", "Blues"]


@pytest.mark.parametrize("fmt", ["wav", "aiff"])
def test_wav_and_aiff_get_an_id3_chunk_where_they_had_none(tmp_path: Path, fmt: str) -> None:
    song = make_audio_file(tmp_path, fmt, seconds=1.0)
    assert mutagen.File(song).tags is None

    write_genres(song, ["Rock", "Blues"])

    assert _tags(song).version == (2, 4, 0)
    assert _tags(song)["TCON"].text == ["Rock", "Blues"]


# ---------------------------------------------------------------- policies


def test_fill_leaves_an_existing_genre_alone(song: Path, fmt: str) -> None:
    _set_genres(song, fmt, ["Jazz"])
    before = _snapshot(song)

    result = write_genres(song, ["Rock", "Blues"], "fill", provenance=PROVENANCE)

    assert (result.changed, result.before, result.after) == (False, ["Jazz"], ["Jazz"])
    assert _snapshot(song) == before  # same bytes, same mtime: no write at all
    assert sorted(p.name for p in song.parent.iterdir()) == [song.name]
    assert read_tags(song).provenance == {}


def test_replace_sets_exactly_the_new_genres(song: Path, fmt: str) -> None:
    _set_genres(song, fmt, ["Jazz", "Rock"])

    result = write_genres(song, ["Rock", "Blues"], "replace")

    assert (result.changed, result.before, result.after) == (
        True,
        ["Jazz", "Rock"],
        ["Rock", "Blues"],
    )
    assert _raw_genres(song, fmt) == ["Rock", "Blues"]


def test_replace_with_the_same_genres_writes_nothing(song: Path, fmt: str) -> None:
    write_genres(song, ["Rock", "Blues"])
    before = _snapshot(song)

    result = write_genres(song, ["Rock", "Blues"], "replace")

    assert result.changed is False
    assert _snapshot(song) == before


def test_merge_keeps_existing_first_without_case_insensitive_duplicates(
    song: Path, fmt: str
) -> None:
    _set_genres(song, fmt, ["Rock", "blues"])

    result = write_genres(song, ["Blues", "Jazz", "ROCK", "jazz"], "merge")

    assert result.after == ["Rock", "blues", "Jazz"]
    assert _raw_genres(song, fmt) == ["Rock", "blues", "Jazz"]


def test_merge_with_nothing_new_writes_nothing(song: Path, fmt: str) -> None:
    _set_genres(song, fmt, ["Rock", "Blues"])
    before = _snapshot(song)

    assert write_genres(song, ["BLUES"], "merge").changed is False
    assert _snapshot(song) == before


def test_bad_options_are_refused_before_the_file_is_touched(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "mp3", seconds=1.0)
    before = _snapshot(song)

    with pytest.raises(ValueError, match="fill, replace, merge"):
        write_genres(song, ["Rock"], "overwrite")
    with pytest.raises(ValueError, match="id3_version"):
        write_genres(song, ["Rock"], id3_version=2)
    with pytest.raises(ValueError, match="list of names"):
        write_genres(song, "Rock")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        write_genres(song, [" ", ""], "replace")
    with pytest.raises(ValueError, match="may not contain ';'"):
        write_genres(song, ["Drum; Bass"])
    with pytest.raises(ValueError, match="provenance"):
        write_genres(song, ["Rock"], provenance={"model name": "x"})
    assert _snapshot(song) == before


# ---------------------------------------------------------------- preservation


def test_other_tags_and_the_cover_stay_exactly_as_they_were(song: Path, fmt: str) -> None:
    _decorate(song, fmt)
    others = _others(song, fmt)

    write_genres(song, ["Rock", "Blues"], provenance=PROVENANCE)

    assert _others(song, fmt) == others
    assert _cover(song, fmt) == COVER
    info = read_tags(song)
    assert (info.title, info.artist, info.album, info.has_cover) == (
        "Night Train",
        "The Testers",
        "Signals",
        True,
    )


@pytest.mark.parametrize("fmt", ID3_FORMATS)
def test_id3v23_write_keeps_the_other_tags(tmp_path: Path, fmt: str) -> None:
    song = make_audio_file(tmp_path, fmt, seconds=1.0)
    _decorate(song, fmt)
    # v2.3 cannot store UTF-8, so mutagen re-encodes text as UTF-16: compare everything else.
    others = {
        key: {name: value for name, value in fields.items() if name != "encoding"}
        for key, fields in _others(song, fmt).items()
    }

    write_genres(song, ["Rock", "Blues"], id3_version=3)

    after = {
        key: {name: value for name, value in fields.items() if name != "encoding"}
        for key, fields in _others(song, fmt).items()
    }
    assert after == others
    assert _cover(song, fmt) == COVER


def test_decoded_audio_is_bit_identical_after_writing(song: Path, fmt: str) -> None:
    decoded, samples = _decoded_digest(song)
    assert samples > 0

    write_genres(song, ["Rock", "Blues"], provenance=PROVENANCE)

    assert _decoded_digest(song) == (decoded, samples)


def test_audio_packets_are_identical_after_writing(song: Path, fmt: str) -> None:
    _decorate(song, fmt)
    packets, count = _packet_digest(song)
    assert count > 0

    write_genres(song, ["Rock", "Blues"], provenance=PROVENANCE)

    assert _packet_digest(song) == (packets, count)


def test_m4a_with_its_index_before_the_audio_keeps_its_packets(tmp_path: Path) -> None:
    # iTunes-style files put moov before mdat, so growing the tags moves the audio and
    # mutagen must rewrite the chunk offsets; FFmpeg's default puts moov last.
    song = _faststart(make_audio_file(tmp_path, "m4a", seconds=1.0), tmp_path / "fast.m4a")
    assert _top_level_atoms(song)[:3] == [b"ftyp", b"moov", b"free"]
    packets, decoded = _packet_digest(song), _decoded_digest(song)

    write_genres(song, ["Rock", "Blues"], provenance={"model": "m" * 5000})

    assert (_packet_digest(song), _decoded_digest(song)) == (packets, decoded)
    assert read_tags(song).genres == ["Rock", "Blues"]


def _faststart(source: Path, target: Path) -> Path:
    with (
        av.open(str(source)) as inp,
        av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(inp.streams.audio[0])
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


def _top_level_atoms(path: Path) -> list[bytes]:
    data, offset, names = path.read_bytes(), 0, []
    while offset < len(data):
        size, name = struct.unpack(">I4s", data[offset : offset + 8])
        names.append(name)
        offset += size
    return names


def test_id3_numeric_genre_references_are_read_as_names(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "mp3", seconds=1.0)
    _set_genres(song, "mp3", ["(17)", "31"])

    assert read_tags(song).genres == ["Rock", "Trance"]
    assert write_genres(song, ["rock", "Blues"], "merge").after == ["Rock", "Trance", "Blues"]


# ---------------------------------------------------------------- atomicity and failures


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.mp3", bytes(range(256)) * 40),
        ("broken.flac", b"fLaC" + b"\x7f\xff\xff\xff" + bytes(range(256)) * 8),
        ("broken.m4a", struct.pack(">I", 24) + b"ftypM4A " + b"\x00" * 12 + b"\xff" * 300),
    ],
)
def test_a_file_mutagen_cannot_parse_is_left_untouched(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = _snapshot(path)

    with pytest.raises(TagError, match=name):
        write_genres(path, ["Rock"])

    assert _snapshot(path) == before
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_a_failure_part_way_through_the_write_leaves_the_original_and_no_temp_file(
    song: Path,
) -> None:
    # A file size limit as large as the song lets the copy succeed and makes mutagen's
    # growing write fail with EFBIG in the middle of saving: a real failure, no mocks.
    before = _snapshot(song)
    script = textwrap.dedent(f"""
        import resource, signal
        from classifier.engine.errors import TagError
        from classifier.engine.filetags import write_genres
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        limit = {song.stat().st_size}
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        try:
            write_genres({str(song)!r}, ["Rock"], provenance={{"model": "x" * 200_000}})
        except TagError as exc:
            print("TagError:", exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    assert f"TagError: {song.name} would grow past the file size limit" in done.stdout, (
        done.stdout + done.stderr
    )
    assert _snapshot(song) == before
    assert [p.name for p in song.parent.iterdir()] == [song.name]


def test_unsupported_file_is_refused_with_a_readable_message(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not music\n")

    with pytest.raises(TagError) as refused:
        write_genres(notes, ["Rock"])

    assert str(refused.value) == (
        "notes.txt is not a file whose tags Genreweb can write "
        "(supported: MP3, FLAC, Ogg Vorbis, Opus, M4A, WAV, AIFF)"
    )
    with pytest.raises(TagError, match="notes.txt is not a file whose tags Genreweb can read"):
        read_tags(notes)
    assert notes.read_text() == "not music\n"


def test_a_missing_file_is_a_tag_error(tmp_path: Path) -> None:
    with pytest.raises(TagError, match="gone.mp3 does not exist"):
        write_genres(tmp_path / "gone.mp3", ["Rock"])


def test_permission_bits_are_kept(song: Path) -> None:
    os.chmod(song, 0o640)

    write_genres(song, ["Rock"])

    assert stat.S_IMODE(song.stat().st_mode) == 0o640
    assert [p.name for p in song.parent.iterdir()] == [song.name]


def test_owner_is_kept_when_running_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can hand a file to another user to set this up")
    song = make_audio_file(tmp_path, "flac", seconds=1.0)
    os.chown(song, 12345, 23456)

    write_genres(song, ["Rock"])

    assert (song.stat().st_uid, song.stat().st_gid) == (12345, 23456)


def test_writing_through_a_symlink_updates_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    song = make_audio_file(tmp_path, "ogg", seconds=1.0)
    link = tmp_path / "link.ogg"
    link.symlink_to(song.name)

    write_genres(link, ["Rock"])

    assert link.is_symlink()
    assert read_tags(song).genres == ["Rock"]


# ---------------------------------------------------------------- provenance


def test_provenance_is_written_in_each_family_and_read_back(song: Path, fmt: str) -> None:
    write_genres(song, ["Rock"], provenance=PROVENANCE)

    tags = _tags(song)
    if _family(fmt) == "id3":
        assert tags["TXXX:GENREWEB_MODEL"].text == ["musicnn-msd+gtzan-abc123"]
        assert tags["TXXX:GENREWEB_CONFIDENCE"].text == ["0.87"]
    elif _family(fmt) == "vorbis":
        assert tags["GENREWEB_MODEL"] == ["musicnn-msd+gtzan-abc123"]
        assert tags["GENREWEB_CONFIDENCE"] == ["0.87"]
    else:
        assert bytes(tags["----:com.genreweb:model"][0]) == b"musicnn-msd+gtzan-abc123"
        assert bytes(tags["----:com.genreweb:confidence"][0]) == b"0.87"
    assert read_tags(song).provenance == PROVENANCE


def test_new_provenance_replaces_the_old_values(song: Path, fmt: str) -> None:
    write_genres(song, ["Rock"], provenance=PROVENANCE)
    write_genres(song, ["Jazz"], "replace", provenance={"model": "second", "confidence": "0.5"})

    assert read_tags(song).provenance == {"model": "second", "confidence": "0.5"}


@pytest.mark.parametrize("fmt", ID3_FORMATS)
def test_id3_version_none_keeps_the_version_the_file_has(tmp_path: Path, fmt: str) -> None:
    older = make_audio_file(tmp_path, fmt, seconds=0.5, name="older")
    _set_genres(older, fmt, ["Rock"])
    audio = mutagen.File(older)
    audio.save(v2_version=3)
    untagged = make_audio_file(tmp_path, fmt, seconds=0.5, name="untagged")
    for path, version in ((older, 3), (untagged, 4)):
        write_genres(path, ["Jazz"], "replace", id3_version=None)
        assert mutagen.File(path).tags.version[:2] == (2, version)
        assert read_tags(path).genres == ["Jazz"]
