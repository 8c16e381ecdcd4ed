"""Tags built to exhaust a parser: the audio is analysed, the tags are not read, a note says
why, and neither time nor memory runs away. Each bomb is read in a child process with a time
limit, so a regression fails its test instead of hanging or swelling the test run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from classifier.engine import tagbounds
from classifier.engine.errors import TagBoundsError, UnsupportedAudioError
from classifier.engine.filetags import read_tags, write_genres
from classifier.engine.tagbounds import MAX_ENTRIES, check_tags
from tests.audiofiles import make_audio_file
from tests.engine import bombs
from tests.engine.hostile import run_in_child

# Before the bounds, FFmpeg spent over 40 s opening each many-entry file and mutagen grew to
# 780 MB on the inflating frame; bounded, each takes well under a second and about 60 MB.
CHILD_SECONDS = 30
CHILD_MEMORY_MB = 300

READ_IN_CHILD = r"""
import json, re, sys
from classifier.engine.audio import iter_decode
from classifier.engine.errors import EngineError
from classifier.engine.filetags import read_tags
warnings = []
samples = sum(block.size for block in iter_decode(sys.argv[1], warnings=warnings))
try:
    read_tags(sys.argv[1])
    tag_error = None
except EngineError as exc:
    tag_error = f"{type(exc).__name__}: {exc}"
# VmHWM is this process's own peak (ru_maxrss would include the parent's, from before exec).
peak = int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) // 1024
print(json.dumps({"seconds": samples / 16000, "warnings": warnings, "tag_error": tag_error,
                  "peak_mb": peak}))
"""


def read_in_child(path: Path) -> dict:
    try:
        result = run_in_child(READ_IN_CHILD, path, timeout=CHILD_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading {path.name} took over {CHILD_SECONDS} s")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def frames_mp3(tmp: Path) -> Path:
    mp3 = make_audio_file(tmp, "mp3", seconds=6.0)
    return bombs.mp3_with_tag(mp3, bombs.many_frames_tag(100_000), tmp / "frames.mp3")


def inflating_mp3(version: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        mp3 = make_audio_file(tmp, "mp3", seconds=6.0)
        tag = bombs.inflating_tag(version=version)
        return bombs.mp3_with_tag(mp3, tag, tmp / f"inflate{version}.mp3")

    return make


def frames_wav(tmp: Path) -> Path:
    wav = make_audio_file(tmp, "wav", seconds=6.0)
    return bombs.wav_with_id3_chunk(wav, bombs.many_frames_tag(100_000), tmp / "frames.wav")


def comments_flac(tmp: Path) -> Path:
    flac = make_audio_file(tmp, "flac", seconds=6.0)
    return bombs.flac_with_comments(flac, 100_000, tmp / "comments.flac")


def items_m4a(tmp: Path) -> Path:
    return bombs.m4a_with_items(make_audio_file(tmp, "m4a", seconds=6.0), MAX_ENTRIES + 100)


BOMBS = {
    "100,000 ID3 frames in an MP3": (frames_mp3, "too many ID3 frames"),
    "an ID3v2.4 frame inflating to 256 MiB": (inflating_mp3(4), "inflate to more than 16 MB"),
    "an ID3v2.3 frame inflating to 256 MiB": (inflating_mp3(3), "inflate to more than 16 MB"),
    "100,000 ID3 frames in a WAV's id3 chunk": (frames_wav, "too many ID3 frames"),
    "100,000 FLAC comments": (comments_flac, "too many comments (100,000)"),
    "4,196 MP4 tag items": (items_m4a, "too many MP4 tag items"),
}


@pytest.mark.parametrize("kind", list(BOMBS))
def test_a_tag_bomb_is_not_read_and_its_audio_is_analysed(tmp_path, kind):
    make, reason = BOMBS[kind]
    path = make(tmp_path)
    found = read_in_child(path)
    assert found["seconds"] == pytest.approx(6.0, abs=0.1)  # all the audio, none of the tags
    assert len(found["warnings"]) == 1, found
    assert found["warnings"][0].startswith(f"The tags of {path.name} were not read: ")
    assert reason in found["warnings"][0] and "Its audio was analysed." in found["warnings"][0]
    assert found["tag_error"].startswith("TagBoundsError: The tags of ")
    assert found["peak_mb"] < CHILD_MEMORY_MB, found


def test_writing_genres_into_a_tag_bomb_refuses_and_leaves_it_alone(tmp_path):
    path = inflating_mp3(4)(tmp_path)
    before = path.read_bytes()
    with pytest.raises(TagBoundsError, match="the file was left unchanged"):
        write_genres(path, ["Rock"], "replace")
    assert path.read_bytes() == before


def test_an_ogg_comment_bomb_is_refused_with_the_reason(tmp_path):
    # Ogg pages carry checksums, so no view can hide the comment header from FFmpeg.
    path = bombs.ogg_with_comments(make_audio_file(tmp_path, "ogg"), MAX_ENTRIES + 100)
    from classifier.engine.audio import check

    with pytest.raises(UnsupportedAudioError, match="too many comments"):
        check(path)
    with pytest.raises(TagBoundsError, match="too many comments"):
        read_tags(path)


def test_a_tag_at_the_bound_is_read(tmp_path):
    mp3 = make_audio_file(tmp_path, "mp3")
    path = bombs.mp3_with_tag(mp3, bombs.many_frames_tag(MAX_ENTRIES), tmp_path / "full.mp3")
    assert check_tags(path).ok
    assert read_tags(path).format == "mp3"


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"])
def test_ordinary_tags_of_every_format_are_within_bounds(tmp_path, fmt):
    path = make_audio_file(tmp_path, fmt)
    write_genres(path, ["Rock", "Electronic"], "replace", provenance={"model": "m"})
    assert check_tags(path).ok
    assert read_tags(path).genres == ["Rock", "Electronic"]


def test_id3v23_tags_are_measured_too(tmp_path):
    path = make_audio_file(tmp_path, "mp3")
    write_genres(path, ["Jazz"], "replace", id3_version=3)
    assert check_tags(path).ok
    bomb = bombs.mp3_with_tag(path, bombs.many_frames_tag(5000, version=3), tmp_path / "b.mp3")
    assert "too many ID3 frames" in (check_tags(bomb).problem or "")


def test_the_masked_view_hides_only_what_it_must(tmp_path):
    path = comments_flac(tmp_path)
    check = check_tags(path)
    assert check.masked and check.start == 0 and len(check.patches) == 1
    with tagbounds.open_masked(path, check) as view:
        seen = view.read()
    original = path.read_bytes()
    ((offset, patch),) = check.patches
    assert len(seen) == len(original)
    assert seen[offset : offset + len(patch)] == patch
    assert seen[:offset] == original[:offset]
    assert seen[offset + len(patch) :] == original[offset + len(patch) :]


@pytest.mark.parametrize("fmt", ["mp3", "flac", "ogg", "m4a", "wav", "aiff"])
def test_measuring_a_file_cut_anywhere_never_fails(tmp_path, fmt):
    # The fuzzer found an MP4 cut inside an atom header making the measuring itself raise.
    path = make_audio_file(tmp_path, fmt, seconds=1.0)
    write_genres(path, ["Rock"], "replace", provenance={"model": "m"})
    whole = path.read_bytes()
    cut = tmp_path / f"cut{path.suffix}"
    for size in sorted({*range(200), *range(0, len(whole), max(1, len(whole) // 300))}):
        cut.write_bytes(whole[:size])
        assert isinstance(check_tags(cut), tagbounds.TagCheck)
