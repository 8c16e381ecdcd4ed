"""`manage.py classify` as a user runs it: a real process and files, its stdout and exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mutagen
import pytest

from tests.audiofiles import make_audio_file
from tests.conftest import REPO

KEYS = {"path", "genres", "styles", "chunks", "duration", "model", "error"}


def classify(*args: str | Path, data_dir: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "GENREWEB_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
    }
    return subprocess.run(
        [sys.executable, "manage.py", "classify", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture
def library(tmp_path, gtzan_dir) -> Path:
    """A folder with two real clips (one in a subfolder) and one damaged file."""
    root = tmp_path / "library"
    (root / "sub").mkdir(parents=True)
    shutil.copy(gtzan_dir / "classical" / "classical.00001.flac", root / "a_classical.flac")
    shutil.copy(gtzan_dir / "metal" / "metal.00002.flac", root / "sub" / "b_metal.flac")
    (root / "c_broken.mp3").write_bytes(b"this is not an mp3 at all" * 40)
    (root / "notes.txt").write_text("not audio, and not walked into")
    return root


def test_json_lines_for_a_folder_walked_recursively(library, tmp_path):
    result = classify(library, "--json", "--top-k", "2", data_dir=tmp_path / "data")
    lines = [json.loads(line) for line in result.stdout.splitlines()]  # nothing else on stdout
    assert [Path(line["path"]).name for line in lines] == [
        "a_classical.flac",
        "c_broken.mp3",
        "b_metal.flac",
    ]
    good = [line for line in lines if line["error"] is None]
    assert len(good) == 2
    for line in good:
        assert set(line) >= KEYS
        assert len(line["genres"]) == 2
        assert line["genres"][0]["confidence"] >= line["genres"][1]["confidence"]
        assert line["chunks"] == 10 and line["duration"] == pytest.approx(30, abs=0.1)
        assert line["styles"] and {"name", "score"} <= set(line["styles"][0])
    broken = lines[1]
    assert "c_broken.mp3" in broken["error"] and broken["genres"] == []
    assert result.returncode == 1  # one file failed, the others were still classified
    assert "c_broken.mp3" in result.stderr


def test_human_output_and_exit_status_zero(tmp_path, gtzan_dir):
    clip = gtzan_dir / "classical" / "classical.00001.flac"
    result = classify(clip, data_dir=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert str(clip) in result.stdout and "classical" in result.stdout
    assert "10 chunks" in result.stdout and "styles:" in result.stdout


def test_write_tags_fill_then_replace(tmp_path, gtzan_dir):
    track = tmp_path / "song.flac"
    shutil.copy(gtzan_dir / "metal" / "metal.00002.flac", track)
    tagged = mutagen.File(track)
    tagged["genre"] = ["Polka"]
    tagged.save()

    filled = classify(track, "--write-tags", data_dir=tmp_path / "data")
    assert filled.returncode == 0, filled.stderr
    assert mutagen.File(track)["genre"] == ["Polka"]  # fill: a genre was already set
    replaced = classify(
        track,
        "--write-tags",
        "--policy",
        "replace",
        "--record-model",
        "--min-confidence",
        "0",
        data_dir=tmp_path / "data",
    )
    assert replaced.returncode == 0, replaced.stderr
    after = mutagen.File(track)
    assert after["genre"][0] == "Metal"
    assert after["genreweb_model"][0].startswith("musicnn-msd-")


def test_missing_path_is_reported_not_a_traceback(tmp_path):
    result = classify(tmp_path / "nope.mp3", data_dir=tmp_path / "data")
    assert result.returncode == 1
    assert "nope.mp3" in result.stderr and "Traceback" not in result.stderr


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = classify(tmp_path / "empty", data_dir=tmp_path / "data")
    assert result.returncode != 0 and "No audio files" in result.stderr


def test_every_format_classifies(tmp_path):
    folder = tmp_path / "formats"
    folder.mkdir()
    for fmt in ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff"):
        make_audio_file(folder, fmt, seconds=4.0, name=f"tone_{fmt}")
    result = classify(folder, "--json", data_dir=tmp_path / "data")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0, result.stderr
    assert len(lines) == 7 and all(line["error"] is None and line["chunks"] == 1 for line in lines)
