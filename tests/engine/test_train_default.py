"""`train-default` end to end on a tiny shared folder made here: the three sources' layouts,
real (synthetic) audio, the CNN, the nested CV, the head file, its card and the feature cache."""

from __future__ import annotations

import csv
import shutil

import pytest

from classifier.engine import cli
from classifier.engine.head import read_head_info
from classifier.engine.runner import EngineConfig, analyse
from classifier.engine.weights import CACHE_FILE
from tests.audiofiles import tone, write_audio
from tests.conftest import MODEL_DIR

RATE = 16_000
# Three "genres" the CNN can tell apart: a low drone, a high chirp, a middle chord.
SOUNDS = {"low": (110.0,), "high": (1760.0, 2500.0), "middle": (440.0, 554.0, 659.0)}


def clip(path, sound, seed):
    return write_audio(path, tone(3.2, RATE, freqs=SOUNDS[sound], seed=seed), RATE, "wav")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    data = root / "data"
    for folder, sound in (("classical", "low"), ("metal", "high")):
        (data / "gtzan_mini" / folder).mkdir(parents=True)
        for n in range(3):
            clip(data / "gtzan_mini" / folder / f"{folder}.{n:05d}.wav", sound, n)
    (data / "mer4q").mkdir(parents=True)
    rows = []
    for n in range(6):
        genres, sound = [("Classical", "low"), ("Pop/Rock", "high"), ("Jazz;Latin", "middle")][
            n % 3
        ]
        name = f"MT{n:04d}.wav"
        clip(data / "mer4q" / name, sound, 10 + n)
        rows.append({"file": name, "artist": f"artist {n}", "title": "t", "genres": genres})
    with open(data / "mer4q" / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["file", "artist", "title", "genres"])
        writer.writeheader()
        writer.writerows(rows)
    (data / "emotify").mkdir(parents=True)
    rows = []
    for n in range(6):
        folder, genre, sound = [
            ("classical", "Classical", "low"),
            ("rock", "Alternative Rock", "high"),
            ("electronic", "Electronic", "middle"),
        ][n % 3]
        name = f"{folder}_{n:03d}.wav"
        clip(data / "emotify" / name, sound, 20 + n)
        rows.append(
            {"file": name, "folder": folder, "genre": genre, "artist": f"band {n}", "title": "t"}
        )
    with open(data / "emotify" / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["file", "folder", "genre", "artist", "title"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def test_train_default_writes_a_multi_genre_head_and_its_card(
    shared, tmp_path, monkeypatch, capsys
):
    models = tmp_path / "models"
    models.mkdir()
    if (MODEL_DIR / CACHE_FILE).exists():  # skip converting the checkpoint again
        shutil.copy(MODEL_DIR / CACHE_FILE, models / CACHE_FILE)
    monkeypatch.setenv("GENREWEB_MODEL_DIR", str(models))
    out = tmp_path / "bundled" / "genre_head.safetensors"
    cache = tmp_path / "cache"
    args = ["train-default", "--shared", str(shared), "--out", str(out), "--cache", str(cache)]

    assert cli.main([*args, "--folds", "3", "--l2", "0.1"]) == 0

    printed = capsys.readouterr().out
    assert "gtzan_accuracy:" in printed and "mer4q_balanced_accuracy:" in printed
    info = read_head_info(out)
    assert info.activation == "sigmoid" and info.feature == "penultimate+taggram"
    assert {"Classical", "Metal", "Rock", "Pop", "Electronic", "Jazz"} <= set(info.genres)
    assert info.taxonomy and info.tag_spelling["R&B/Soul"] == "R&B/Soul"
    assert info.notes["sources"] == {"gtzan": 6, "mer4q": 6, "emotify": 6}
    card = (out.parent / "MODEL_CARD.md").read_text()
    assert "GTZAN track accuracy" in card and "ECE" in card
    assert (out.parent / "confusion.png").stat().st_size > 1000
    assert (out.parent / "reliability.png").stat().st_size > 1000
    assert len(list(cache.glob("*.npz"))) == 18  # every clip's CNN outputs, kept

    # The head works in the engine: the low drone is told apart from the high chirp.
    config = EngineConfig(model_dir=models, head_path=out)
    low = analyse(shared / "data" / "gtzan_mini" / "classical" / "classical.00000.wav", config)
    high = analyse(shared / "data" / "gtzan_mini" / "metal" / "metal.00000.wav", config)
    assert low.probabilities["Classical"] > high.probabilities["Classical"]
    assert high.probabilities["Metal"] > low.probabilities["Metal"]
    assert all(g.parent is None or g.parent in info.genres for g in low.genres)


def test_train_default_refuses_a_folder_without_the_sources(tmp_path, capsys):
    assert cli.main(["train-default", "--shared", str(tmp_path), "--out", str(tmp_path / "h")]) == 2
    assert "lacks gtzan_mini, mer4q, emotify" in capsys.readouterr().err
