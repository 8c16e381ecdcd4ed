"""Multi-label training on small synthetic feature sets: targets, folds, the head, calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from classifier.engine.datasets import LabelledClip
from classifier.engine.head import HeadInfo, load_head, read_head_info, save_head
from classifier.engine.headnet import TrainableHead, torch_calibrated_sigmoid
from classifier.engine.labels import MSD_TAGS
from classifier.engine.multilabel import (
    FitConfig,
    LabelSpace,
    Targets,
    artist_folds,
    clip_probabilities,
    cross_fitted_probabilities,
    cross_validated_logits,
    expected_calibration_error,
    fit_calibration,
    fit_multilabel,
    tag_prior,
    targets,
)
from classifier.engine.taxonomy import load_taxonomy

# Genres: two top-level ones, a style of the first, and a third top-level one.
SPACE = LabelSpace(["Electronic", "House", "Rock", "Jazz"], [-1, 0, -1, -1])


def clip(name, source, group, positives, any_of=()):
    return LabelledClip(Path(name), source, group, frozenset(positives), tuple(any_of))


def test_targets_leave_styles_of_a_positive_and_ambiguous_genres_unknown():
    clips = [
        clip("a.mp3", "x", "a", {"Electronic"}),  # House: unknown (a style of a positive)
        clip("b.mp3", "x", "b", {"Electronic", "House"}),
        clip("c.mp3", "x", "c", set(), [frozenset({"Rock", "Jazz"})]),  # Rock or Jazz
        clip("d.mp3", "x", "d", {"Jazz"}),
    ]
    t = targets(clips, SPACE)
    nan = np.nan
    expected = np.array(
        [[1, nan, 0, 0], [1, 1, 0, 0], [0, 0, nan, nan], [0, 0, 0, 1]], dtype=np.float32
    )
    np.testing.assert_array_equal(t.y, expected)
    assert t.any_of == [[], [], [[2, 3]], []]


def test_artist_folds_never_split_an_artist_and_follow_gtzan_numbering():
    clips = [clip(f"m{i}.mp3", "mer4q", f"artist{i % 7}", {"Rock"}) for i in range(40)]
    clips += [clip(f"jazz.{n:05d}.flac", "gtzan", "gtzan/jazz", {"Jazz"}) for n in range(10)]
    folds = artist_folds(clips, 3)
    for artist in {c.group for c in clips if c.source == "mer4q"}:
        assert len({f for c, f in zip(clips, folds, strict=True) if c.group == artist}) == 1
    gtzan = [f for c, f in zip(clips, folds, strict=True) if c.source == "gtzan"]
    assert gtzan == sorted(gtzan) and set(gtzan) == {0, 1, 2}  # contiguous blocks in order
    assert set(folds) == {0, 1, 2}


def synthetic(rng, n_per_kind=12, chunks=4, dim=16):
    """Clips of four kinds: Electronic+House, Electronic only, Rock, Jazz; and 12 clips labelled
    only "Rock or Jazz" whose features are Rock's. Each kind sits at its own centre."""
    centres = {kind: rng.normal(0, 2.5, dim) for kind in ("house", "electronic", "rock", "jazz")}
    labels = {
        "house": {"Electronic", "House"},
        "electronic": {"Electronic"},
        "rock": {"Rock"},
        "jazz": {"Jazz"},
    }
    clips, features = [], []
    for kind, centre in centres.items():
        for n in range(n_per_kind):
            clips.append(clip(f"{kind}{n}.mp3", "src", f"{kind}-artist{n % 4}", labels[kind]))
            features.append(centre + rng.normal(0, 1, (chunks, dim)))
    for n in range(n_per_kind):
        clips.append(
            clip(f"ambiguous{n}.mp3", "src", f"amb{n % 4}", set(), [frozenset({"Rock", "Jazz"})])
        )
        features.append(centres["rock"] + rng.normal(0, 1, (chunks, dim)))
    return clips, features


def test_the_head_learns_several_genres_and_cross_validates():
    rng = np.random.default_rng(3)
    clips, features = synthetic(rng)
    target = targets(clips, SPACE)
    folds = artist_folds(clips, 4)
    logits = cross_validated_logits(features, target, SPACE, folds, FitConfig(l2=1e-2))
    probs = clip_probabilities(logits, SPACE)
    house = [i for i, c in enumerate(clips) if "House" in c.positives]
    plain = [i for i, c in enumerate(clips) if c.positives == {"Electronic"}]
    rock = [i for i, c in enumerate(clips) if c.positives == {"Rock"}]
    assert (probs[house, 0] > 0.5).all() and (probs[house, 1] > 0.5).all()  # both genres
    assert (probs[plain, 0] > 0.5).mean() > 0.9 and (probs[plain, 1] < 0.5).mean() > 0.9
    assert (probs[rock, 2] > 0.5).all() and (probs[rock, 0] < 0.5).all()
    # Shuffled labels leave nothing to learn: out of fold, the head does far worse.
    shuffled = Targets(target.y[rng.permutation(len(clips))], target.any_of)
    chance = clip_probabilities(
        cross_validated_logits(features, shuffled, SPACE, folds, FitConfig(l2=1e-2)), SPACE
    )
    hits = ((probs > 0.5) == (target.y > 0.5))[~np.isnan(target.y)].mean()
    chance_hits = ((chance > 0.5) == (shuffled.y > 0.5))[~np.isnan(shuffled.y)].mean()
    assert hits > 0.9 and chance_hits < hits - 0.2


def test_pooled_training_fits_each_clips_mean_chunk_and_runs_per_chunk():
    rng = np.random.default_rng(5)
    clips, features = synthetic(rng)
    target = targets(clips, SPACE)
    pooled = fit_multilabel(features, target, SPACE, FitConfig(l2=1e-2, pooled=True))
    # The same as training on one row per clip, its mean chunk.
    means = [f.mean(0, keepdims=True) for f in features]
    by_hand = fit_multilabel(means, target, SPACE, FitConfig(l2=1e-2))
    chunk = features[0]
    np.testing.assert_allclose(pooled.probabilities(chunk), by_hand.probabilities(chunk), atol=1e-5)
    rock = [i for i, c in enumerate(clips) if c.positives == {"Rock"}]
    probs = np.stack([pooled.probabilities(features[i]).mean(0) for i in rock])
    assert (probs[:, 2] > 0.5).all() and (probs[:, 0] < 0.5).all()


def test_an_ambiguous_label_asks_for_one_of_its_genres_not_both():
    rng = np.random.default_rng(4)
    clips, features = synthetic(rng)
    ambiguous = [i for i, c in enumerate(clips) if c.any_of]
    head = fit_multilabel(features, targets(clips, SPACE), SPACE)
    probs = np.stack([head.probabilities(features[i]).mean(0) for i in ambiguous])
    assert (probs[:, 2] > 0.5).all()  # they sound like Rock: Rock is the one that applies
    assert (probs[:, 3] < 0.5).all()  # and Jazz, whose own clips differ, is not forced on
    # Read as both positives instead, the same labels would force Jazz onto them.
    both = [
        clip(str(c.path), c.source, c.group, {"Rock", "Jazz"}) if c.any_of else c for c in clips
    ]
    naive = fit_multilabel(features, targets(both, SPACE), SPACE)
    naive_probs = np.stack([naive.probabilities(features[i]).mean(0) for i in ambiguous])
    assert (naive_probs[:, 3] > 0.5).all()


def test_a_style_never_scores_above_its_parent():
    rng = np.random.default_rng(5)
    clips, features = synthetic(rng)
    head = fit_multilabel(features, targets(clips, SPACE), SPACE)
    # Force a raw disagreement: push House up, Electronic down, and check the output.
    head.bias.copy_(torch.tensor([-4.0, 4.0, 0.0, 0.0]))
    x = np.concatenate(features)
    with torch.inference_mode():
        raw = torch.sigmoid(head(torch.from_numpy(x.astype(np.float32))) + head.bias).numpy()
    assert (raw[:, 1] > raw[:, 0]).any()  # the disagreement is there before the hierarchy
    chunk_probs = head.probabilities(x)
    assert (chunk_probs[:, 0] >= chunk_probs[:, 1]).all()
    np.testing.assert_allclose(chunk_probs[:, 1], raw[:, 1], rtol=1e-6)  # the style untouched
    np.testing.assert_allclose(chunk_probs[:, 0], np.maximum(raw[:, 0], raw[:, 1]), rtol=1e-6)


def test_ece_of_a_known_table():
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.3])
    correct = np.array([True, True, True, False, False, True])
    ece, table = expected_calibration_error(confidence, correct)
    # bin 0.9: accuracy 0.75 (gap 0.15, 4 of 6); bin 0.3: accuracy 0.5 (gap 0.2, 2 of 6)
    assert ece == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.2)
    assert [n for _, _, n in table] == [2, 4]


def overconfident(rng, n=400, genres=2, factor=3.0):
    """Clip logits whose real odds are factor times milder than they say, one chunk each."""
    space = LabelSpace([f"g{i}" for i in range(genres)], [-1] * genres)
    z = rng.normal(0, 3, (n, genres)).astype(np.float32)
    y = (rng.random((n, genres)) < 1 / (1 + np.exp(-z / factor))).astype(np.float32)
    return space, [row[None, :] for row in z], Targets(y, [[] for _ in range(n)])


def test_calibration_fixes_overconfident_logits_and_lowers_the_ece():
    rng = np.random.default_rng(6)
    space, logits, target = overconfident(rng)
    temperature = fit_calibration(logits, target, space, "temperature")
    assert temperature.scale[0] == pytest.approx(1 / 3, rel=0.25)
    folds = [i % 4 for i in range(len(logits))]

    def ece(method):
        probs = cross_fitted_probabilities(logits, target, space, folds, method)
        return expected_calibration_error(probs.ravel(), target.y.ravel() > 0.5)[0]

    raw, calibrated, platt = ece("none"), ece("temperature"), ece("platt")
    assert raw > 0.08
    assert calibrated < 0.05 and platt < 0.05 and calibrated < raw / 2


def test_a_multi_label_head_round_trips_and_old_heads_still_load(tmp_path):
    rng = np.random.default_rng(7)
    clips, features = synthetic(rng)
    head = fit_multilabel(features, targets(clips, SPACE), SPACE)
    head.scale.copy_(torch.tensor([0.5, 0.7, 0.9, 1.1]))
    info = HeadInfo(
        genres=SPACE.genres,
        activation="sigmoid",
        parents={"House": "Electronic"},
        taxonomy="1",
        tag_spelling={g: g for g in SPACE.genres},
    )
    save_head(head, info, tmp_path / "multi.safetensors")
    loaded, loaded_info, _ = load_head(tmp_path / "multi.safetensors")
    assert loaded_info == info and loaded.multi_label
    x = np.concatenate(features)
    np.testing.assert_allclose(loaded.probabilities(x), head.probabilities(x), atol=1e-6)

    # A single-label head written before heads knew parents: its info has no such fields.
    old = TrainableHead(16, 3)
    old_info = HeadInfo(genres=["a", "b", "c"])
    save_head(old, old_info, tmp_path / "old.safetensors")
    from safetensors.torch import load_file, save_file

    legacy = {"genres": ["a", "b", "c"], "feature": "penultimate", "hidden": 0}
    save_file(
        load_file(str(tmp_path / "old.safetensors")),
        str(tmp_path / "legacy.safetensors"),
        {"info": __import__("json").dumps(legacy), "version": "deadbeef"},
    )
    legacy_head, legacy_info, version = load_head(tmp_path / "legacy.safetensors")
    assert version == "deadbeef" and not legacy_head.multi_label
    assert legacy_info.activation == "softmax" and legacy_info.parents == {}
    assert read_head_info(tmp_path / "legacy.safetensors").genres == ["a", "b", "c"]
    sums = legacy_head.probabilities(rng.normal(size=(5, 16))).sum(1)
    np.testing.assert_allclose(sums, 1.0, atol=1e-5)


@pytest.mark.parametrize("hidden", [0, 8])
def test_the_torch_head_computes_what_the_engine_computes(hidden):
    # Training is torch's and a classify run's is numpy's (head.py): the same weights must
    # give the same probabilities, softmax and calibrated sigmoid alike.
    rng = np.random.default_rng(8)
    torch.manual_seed(8)
    x = rng.normal(0, 2, size=(20, 16)).astype(np.float32)
    single = TrainableHead(16, 3, hidden).eval()
    single.mean.copy_(torch.from_numpy(rng.normal(size=16).astype(np.float32)))
    single.std.copy_(torch.from_numpy(rng.uniform(0.5, 2, size=16).astype(np.float32)))
    with torch.inference_mode():
        expected = torch.softmax(single(torch.from_numpy(x)), -1).numpy()
    np.testing.assert_allclose(single.probabilities(x), expected, atol=1e-6)

    # Genre 0 has two styles: it takes the higher of them.
    multi = TrainableHead(16, 4, hidden, multi_label=True, parents=[-1, 0, 0, -1]).eval()
    multi.scale.copy_(torch.tensor([0.5, 1.5, 2.0, 1.0]))
    multi.bias.copy_(torch.tensor([-3.0, 0.5, 1.0, 0.0]))
    with torch.inference_mode():
        logits = multi(torch.from_numpy(x))
        expected = torch_calibrated_sigmoid(logits, multi.scale, multi.bias, multi.parent).numpy()
    np.testing.assert_allclose(multi.probabilities(x), expected, atol=1e-6)
    lifted = expected[:, 1:3].max(1) > torch.sigmoid(logits[:, 0] * 0.5 - 3).numpy()
    assert lifted.any() and (expected[:, 0] >= expected[:, 1:3].max(1)).all()


# ---------------------------------------------------------------- variants (bench/head_variants)


def test_a_prior_is_what_the_l2_pulls_the_weights_towards():
    rng = np.random.default_rng(6)
    clips, features = synthetic(rng)
    target = targets(clips, SPACE)
    prior = rng.normal(0, 1, (len(SPACE.genres), features[0].shape[1])).astype(np.float32)
    centred = fit_multilabel(features, target, SPACE, FitConfig(l2=1e4, prior=prior))
    plain = fit_multilabel(features, target, SPACE, FitConfig(l2=1e4))
    np.testing.assert_allclose(centred.net[-1].weight.detach().numpy(), prior, atol=1e-2)
    assert np.abs(plain.net[-1].weight.detach().numpy()).max() < 1e-2
    # A weak L2 lets the labels override a prior that is wrong about every genre.
    learned = fit_multilabel(features, target, SPACE, FitConfig(l2=1e-2, prior=-prior))
    rock = [i for i, c in enumerate(clips) if c.positives == {"Rock"}]
    probs = np.stack([learned.probabilities(features[i]).mean(0) for i in rock])
    assert (probs[:, 2] > 0.5).all() and (probs[:, 0] < 0.5).all()
    with pytest.raises(ValueError, match="linear"):
        fit_multilabel(features, target, SPACE, FitConfig(prior=prior, hidden=4))


def test_the_tag_prior_maps_each_msd_tag_to_the_genres_the_taxonomy_reads_it_as():
    space = LabelSpace(["Electronic", "House", "R&B/Soul", "Rock", "Jazz"], [-1, 0, -1, -1, -1])
    prior = tag_prior("penultimate+taggram", space, load_taxonomy(), 0.5)
    assert prior.shape == (5, 250)
    assert not prior[:, :200].any()  # the penultimate layer: no prior
    column = {tag: 200 + i for i, tag in enumerate(MSD_TAGS)}
    assert prior[1, column["House"]] == 0.5 and prior[0, column["House"]] == 0.5  # and parent
    assert prior[2, column["rnb"]] == 0.5 and prior[3, column["classic rock"]] == 0.5
    assert prior[4, column["jazz"]] == 0.5 and prior[4].sum() == 0.5
    assert not prior[:, column["female vocalists"]].any()  # not a genre
    with pytest.raises(ValueError, match="taggram"):
        tag_prior("penultimate", space, load_taxonomy(), 0.5)


def test_the_top_level_softmax_term_puts_more_mass_on_each_clips_own_genre():
    rng = np.random.default_rng(7)
    clips, features = synthetic(rng)
    features = [f + rng.normal(0, 4, f.shape) for f in features]  # the kinds overlap
    target = targets(clips, SPACE)
    top = SPACE.top_level()  # Electronic, Rock, Jazz
    own = [
        [SPACE.genres[j] in c.positives or c.any_of != () and j in (2, 3) for j in top]
        for c in clips
    ]

    def loss(config: FitConfig) -> float:
        """The term itself: -log softmax mass on the clip's top-level genres, chunk mean."""
        head = fit_multilabel(features, target, SPACE, config)
        total = []
        for f, mask in zip(features, own, strict=True):
            z = torch.from_numpy(head.inference().logits(f)[:, top])
            on = torch.logsumexp(z[:, torch.tensor(mask)], 1)
            total.append(float((torch.logsumexp(z, 1) - on).mean()))
        return float(np.mean(total))

    with_term, without = loss(FitConfig(l2=1e-2, top_softmax=5.0)), loss(FitConfig(l2=1e-2))
    assert with_term < 0.97 * without, (with_term, without)  # 0.287 against 0.302 here
