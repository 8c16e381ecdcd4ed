"""A multi-genre head with a style, through the engine: analyse() and `classify --json`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from classifier.engine import cli
from classifier.engine.config import TagChoice
from classifier.engine.head import HeadInfo, save_head
from classifier.engine.headnet import TrainableHead
from classifier.engine.runner import EngineConfig, analyse
from tests.audiofiles import make_audio_file
from tests.conftest import MODEL_DIR

GENRES = ["Electronic", "House", "Rock"]
PARENTS = {"House": "Electronic"}


@pytest.fixture(scope="module")
def house_head(tmp_path_factory):
    """A head whose House is likely whatever it hears and whose Electronic, on its own, is not:
    only the style's parent rule can lift Electronic."""
    folder = tmp_path_factory.mktemp("head")
    head = TrainableHead(250, 3, multi_label=True, parents=[-1, 0, -1])
    linear = head.net[-1]
    torch.nn.init.zeros_(linear.weight)
    with torch.no_grad():
        linear.bias.copy_(torch.tensor([-3.0, 1.0, -2.0]))
    info = HeadInfo(
        genres=GENRES,
        feature="penultimate+taggram",
        activation="sigmoid",
        parents=PARENTS,
        tag_spelling={g: g for g in GENRES},
        taxonomy="1",
    )
    path = folder / "house.safetensors"
    save_head(head, info, path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_audio_file(tmp_path_factory.mktemp("audio"), "flac", seconds=7, sample_rate=16_000)


def test_a_style_comes_with_its_parent_in_the_verdict(house_head, clip):
    analysis = analyse(
        clip, EngineConfig(model_dir=MODEL_DIR, head_path=house_head, novelty_path=None), top_k=3
    )
    names = [(g.name, g.parent) for g in analysis.genres]
    assert names == [("Electronic", None), ("House", "Electronic"), ("Rock", None)]
    house = 1 / (1 + np.exp(-1.0))
    assert analysis.genres[1].confidence == pytest.approx(house, abs=1e-5)
    assert analysis.genres[0].confidence == pytest.approx(house, abs=1e-5)  # raised to House
    assert analysis.genres[2].confidence == pytest.approx(1 / (1 + np.exp(2.0)), abs=1e-5)
    # Independent genres: the probabilities do not sum to 1, each chunk obeys the parent rule.
    assert sum(analysis.probabilities.values()) > 1.2
    for chunk in analysis.timeline:
        assert chunk.probabilities["Electronic"] >= chunk.probabilities["House"]
    assert analysis.primary == "Electronic"
    # Top-level genres only by default, the style too when asked; Rock is below the threshold.
    assert analysis.tag_values() == ["Electronic"]
    assert analysis.tag_values(TagChoice(styles=True)) == ["Electronic", "House"]


def test_the_cli_json_gives_each_genre_its_parent(house_head, clip, monkeypatch, capsys):
    monkeypatch.setenv("GENREWEB_MODEL_DIR", str(MODEL_DIR))
    monkeypatch.setenv("GENREWEB_HEAD_PATH", str(house_head))
    assert cli.main(["classify", "--json", "--top-k", "2", str(clip)]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["genres"] == [
        {"name": "Electronic", "parent": None, "confidence": pytest.approx(0.7311, abs=1e-4)},
        {"name": "House", "parent": "Electronic", "confidence": pytest.approx(0.7311, abs=1e-4)},
    ]
    assert list(line["genres"][1]) == ["name", "parent", "confidence"]
    assert line["error"] is None
