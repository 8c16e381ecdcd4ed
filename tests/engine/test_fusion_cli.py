"""`classify --json` with evidence: the audio's own verdict beside the fused one, what each
source said, and a folder's albums pooled in a second pass."""

from __future__ import annotations

import argparse
import io
import json

import pytest
from mutagen.flac import FLAC

from classifier.engine import cli
from tests.audiofiles import make_audio_file


def tagged(folder, name, seed, **fields):
    path = make_audio_file(folder, "flac", seconds=4.0, name=name, seed=seed)
    audio = FLAC(path)
    for key, value in fields.items():
        audio[key.upper()] = [value]
    audio.save()
    return path


@pytest.fixture(scope="module")
def lines(tmp_path_factory, engine_config):
    folder = tmp_path_factory.mktemp("library")
    tagged(folder, "a1", 1, album="Tones", artist="Sine", genre="Jazz")
    tagged(folder, "a2", 2, album="Tones", artist="Sine")
    tagged(folder, "a3", 3, album="Tones", artist="Sine", genre="Dungeon Synth")
    tagged(folder, "loose", 4)
    parser = argparse.ArgumentParser()
    cli.add_classify_arguments(parser)
    options = vars(parser.parse_args([str(folder), "--json", "--top-k", "50"]))
    out, err = io.StringIO(), io.StringIO()
    assert cli.classify(options, engine_config, out, err) == 0, err.getvalue()
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    return {line["path"].rsplit("/", 1)[1]: line for line in found}


def confidence(genres, name):
    return next(g["confidence"] for g in genres if g["name"] == name)


def test_every_line_has_the_audio_verdict_and_the_evidence(lines):
    for line in lines.values():
        assert {"genres", "audio_genres", "evidence"} <= set(line)
        assert [set(g) for g in line["audio_genres"]] == [set(g) for g in line["genres"]]
        assert {g["name"] for g in line["audio_genres"]} == {g["name"] for g in line["genres"]}


def test_a_file_tag_moves_the_fused_verdict_towards_it(lines):
    line = lines["a1.flac"]
    tag = next(e for e in line["evidence"] if e["source"] == "file_tag")
    assert tag["genres"] == [{"name": "Jazz", "confidence": 1.0}] and tag["unknown"] == []
    assert confidence(line["genres"], "Jazz") > confidence(line["audio_genres"], "Jazz")


def test_an_unknown_spelling_is_reported_and_changes_nothing_by_itself(lines):
    tag = next(e for e in lines["a3.flac"]["evidence"] if e["source"] == "file_tag")
    assert tag["genres"] == [] and tag["unknown"] == ["Dungeon Synth"]


def test_the_folder_s_album_is_pooled(lines):
    for name in ("a1.flac", "a2.flac", "a3.flac"):
        album = next(e for e in lines[name]["evidence"] if e["source"] == "album")
        assert album["tracks"] == 2 and len(album["genres"]) == 3
        assert album["far_from_album"] is False and 0 <= album["distance"] <= 1


def test_a_file_with_no_evidence_keeps_the_audio_verdict(lines):
    line = lines["loose.flac"]
    assert line["evidence"] == [] and line["genres"] == line["audio_genres"]


def test_fusion_report_is_a_command_and_refuses_a_bad_seed_count(capsys):
    assert "fusion-report" in cli.COMMANDS
    assert cli.main(["fusion-report", "--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
