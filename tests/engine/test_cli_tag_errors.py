"""`classify --write-tags` where the analysis succeeds but the tag write fails: the genres
found are still printed (and in the JSON), beside the reason the tags were not written."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from classifier.engine import cli
from tests.audiofiles import make_audio_file
from tests.engine import bombs


@pytest.fixture
def folder(tmp_path):
    good = make_audio_file(tmp_path, "mp3", seconds=6.0, name="good")
    bomb = bombs.mp3_with_tag(good, bombs.inflating_tag(), tmp_path / "bomb.mp3")
    return tmp_path, bomb


def classify(engine_config, path, *extra: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    cli.add_classify_arguments(parser)
    options = vars(parser.parse_args([str(path), "--write-tags", "--min-confidence", "0", *extra]))
    out, err = io.StringIO(), io.StringIO()
    status = cli.classify(options, engine_config, out, err)
    return status, out.getvalue(), err.getvalue()


def test_the_genres_are_printed_when_only_the_tag_write_fails(engine_config, folder):
    root, bomb = folder
    status, out, err = classify(engine_config, root)
    assert status == 1 and "1 of 2 files failed." in err
    bomb_lines = out.split(f"{bomb}: ", 1)[1]
    assert "%" in bomb_lines.splitlines()[0]  # the verdict, with its confidence
    assert "tags: not written (The tags of bomb.mp3 were not read" in bomb_lines
    assert f"{bomb}: error: the tags were not written: The tags of bomb.mp3" in err


def test_the_json_keeps_the_genres_and_gives_the_tag_error(engine_config, folder):
    _, bomb = folder
    status, out, _ = classify(engine_config, bomb, "--json")
    found = json.loads(out)
    assert status == 1
    assert found["genres"] and found["genres"][0]["confidence"] > 0
    assert found["tag_error"].startswith("The tags of bomb.mp3 were not read")
    assert found.get("error") is None  # the analysis itself succeeded
