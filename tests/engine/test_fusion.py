"""The fusion rule's arithmetic, album pooling as tracks arrive, the far-from-album flag,
library fusion, and the learning step recovering known weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from classifier.engine.evidence import TrackEvidence, parse_genres
from classifier.engine.fusion import (
    FEATURES,
    AlbumPool,
    Evidence,
    FusionWeights,
    album_distance,
    far_from_album,
    fuse,
    load_weights,
    logit,
    sigmoid,
    support,
    tag_reliability,
    terms,
)
from classifier.engine.library import LibraryTrack, fuse_library

PARENTS = {"House": "Electronic"}
AUDIO = {"Electronic": 0.3, "House": 0.2, "Jazz": 0.6, "Rock": 0.1}
WEIGHTS = FusionWeights(dict.fromkeys(FEATURES, 0.0) | {"tag": 2.0, "tag_against": -1.0}, 0.3)


def test_the_rule_is_a_weighted_sum_of_log_odds():
    evidence = Evidence(file_tag=[frozenset({"Rock"})])
    fused = fuse(AUDIO, evidence, WEIGHTS, PARENTS)
    assert fused["Rock"] == pytest.approx(sigmoid(logit(0.1) + 2.0))
    assert fused["Jazz"] == pytest.approx(sigmoid(logit(0.6) - 1.0))
    assert fused["House"] == pytest.approx(sigmoid(logit(0.2) - 1.0))


def test_every_term_adds_its_weight_times_its_evidence():
    weights = FusionWeights({k: 0.1 * (n + 1) for n, k in enumerate(FEATURES)}, 0.3)
    evidence = Evidence(
        file_tag=[frozenset({"Jazz", "Rock"})],
        album={"Electronic": 0.8, "House": 0.7, "Jazz": 0.1, "Rock": 0.1},
        album_tracks=3,
        artist={"Electronic": 0.5, "House": 0.5, "Jazz": 0.5, "Rock": 0.5},
        artist_tracks=1,
        tag_reliability=0.9,
    )
    fused = fuse(AUDIO, evidence, weights, PARENTS)
    e = terms("Jazz", evidence, PARENTS)
    assert e["tag"] == 0.5  # one of two candidates
    assert e["tag_reliability"] == pytest.approx(0.5 * 0.4)
    assert e["album"] == pytest.approx(logit(0.1) * 3 / 4)
    assert e["artist"] == pytest.approx(0.0) and e["artist_bias"] == 1.0
    z = logit(0.6) + sum(weights.w(k) * v for k, v in e.items())
    assert fused["Jazz"] == pytest.approx(sigmoid(z))


def test_a_style_raises_its_parent_and_a_style_tag_names_its_parent():
    evidence = Evidence(file_tag=[frozenset({"House"})])
    fused = fuse(AUDIO, evidence, WEIGHTS, PARENTS)
    assert support("Electronic", evidence.file_tag, PARENTS) == 1.0
    assert fused["Electronic"] >= fused["House"]
    # A tag naming the parent says nothing against its styles.
    assert (
        terms("House", Evidence(file_tag=[frozenset({"Electronic"})]), PARENTS)["tag_against"]
        == 0.0
    )


def test_no_evidence_leaves_the_audio_verdict_exactly():
    tracks = [LibraryTrack(AUDIO, TrackEvidence())]
    assert fuse_library(tracks, WEIGHTS, PARENTS)[0].probabilities == AUDIO


def test_reliability_is_shrunk_for_small_libraries():
    assert tag_reliability([]) == 0.5
    assert 0.5 < tag_reliability([True] * 3) < tag_reliability([True] * 100) < 1.0


# ---------------------------------------------------------------- album pooling


def rock(p: float) -> dict[str, float]:
    return {"Rock": p, "Jazz": 1 - p}


def test_the_tenth_track_changes_the_album_verdict_of_the_first_nine():
    pool = AlbumPool()
    for n in range(9):
        pool.add("album", n, rock(0.6))
    before = [pool.others("album", n) for n in range(9)]
    pool.add("album", 9, rock(0.0))
    for n in range(9):
        mean, count = pool.others("album", n)
        assert count == 9 and before[n][1] == 8
        assert mean["Rock"] == pytest.approx((8 * 0.6 + 0.0) / 9) != before[n][0]["Rock"]
    assert pool.verdict("album")["Rock"] == pytest.approx(0.54)


def test_replacing_and_removing_tracks_keeps_the_sums_exact():
    pool = AlbumPool()
    rng = np.random.default_rng(0)
    for n in range(50):
        pool.add("a", n, rock(float(rng.random())))
    pool.add("a", 3, rock(1.0))  # re-analysed: replaced, not counted twice
    for n in range(10, 50):
        pool.remove("a", n)
    assert pool.size("a") == 10
    mean, count = pool.others("a", 0)
    assert count == 9
    expected = np.mean([pool._tracks["a"][n]["Rock"] for n in range(1, 10)])
    assert mean["Rock"] == pytest.approx(expected)
    assert pool.others("elsewhere", 0) == ({}, 0)


# ---------------------------------------------------------------- far from its album


def test_a_track_unlike_its_album_is_flagged_and_one_like_it_is_not():
    album = {"Electronic": 0.05, "House": 0.01, "Jazz": 0.9, "Rock": 0.1}
    far = far_from_album(
        {"Electronic": 0.9, "House": 0.8, "Jazz": 0.05, "Rock": 0.1}, album, 5, WEIGHTS, PARENTS
    )
    near = far_from_album(
        {"Electronic": 0.1, "House": 0.0, "Jazz": 0.8, "Rock": 0.2}, album, 5, WEIGHTS, PARENTS
    )
    assert far.far and far.score > 0.3 and not near.far and near.score < 0.05
    lonely = far_from_album(
        {"Electronic": 0.9, "House": 0.8, "Jazz": 0.05, "Rock": 0.1}, album, 1, WEIGHTS, PARENTS
    )
    assert not lonely.far  # one other track is too little to judge by
    assert album_distance(album, album, PARENTS) == pytest.approx(0.0, abs=1e-9)


def test_library_fusion_pools_albums_and_flags_the_stranger():
    jazz = {"Electronic": 0.05, "House": 0.01, "Jazz": 0.8, "Rock": 0.2}
    techno = {"Electronic": 0.9, "House": 0.6, "Jazz": 0.05, "Rock": 0.1}

    def on_album(audio: dict[str, float], genre: str = "") -> LibraryTrack:
        return LibraryTrack(
            audio,
            TrackEvidence(
                values=parse_genres([genre] if genre else []), album="Kind of Blue", artist="Miles"
            ),
            folder="music",
        )

    tracks = [on_album(jazz) for _ in range(4)] + [on_album(techno)]
    tracks[0] = on_album({"Electronic": 0.05, "House": 0.01, "Jazz": 0.45, "Rock": 0.5})
    weights = load_weights()
    fused = fuse_library(tracks, weights, PARENTS)
    assert fused[0].evidence.album_tracks == 4
    assert max(fused[0].probabilities, key=fused[0].probabilities.__getitem__) == "Jazz"
    assert [f.flag.far for f in fused if f.flag] == [False, False, False, False, True]


# ---------------------------------------------------------------- the weights


def test_the_bundled_weights_load_with_their_figures():
    weights = load_weights()
    assert set(weights.weights) == set(FEATURES)
    assert weights.w("tag") > 0 and 0 < weights.flag_threshold < 1
    assert weights.about["figures"]["targets"]


def test_unknown_evidence_in_a_weights_file_is_refused():
    with pytest.raises(ValueError, match="unknown evidence"):
        FusionWeights.from_json({"weights": {"horoscope": 1.0}, "flag_threshold": 0.2})


def test_learning_recovers_the_weight_that_made_the_data():
    from classifier.engine.fusionsim import Design, fit_weights

    rng = np.random.default_rng(0)
    tracks, tops, k = 3000, 4, len(FEATURES)
    x = np.zeros((tracks, tops, k))
    tag = FEATURES.index("tag")
    right = rng.integers(tops, size=tracks)
    tagged = rng.random(tracks) < 0.7  # the tag names the right genre 70% of the time
    named = np.where(tagged, right, rng.integers(tops, size=tracks))
    x[np.arange(tracks), named, tag] = 1.0
    offset = rng.normal(0, 1, (tracks, tops))
    # Draw the right genre from softmax(offset + 1.5 * tag).
    z = offset + 1.5 * x[..., tag]
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    truth = np.array([rng.choice(tops, p=row) for row in p])
    accepted = np.zeros((tracks, tops), bool)
    accepted[np.arange(tracks), truth] = True
    flat = x.reshape(-1, k)
    design = Design(
        flat, offset.reshape(-1), accepted.reshape(-1).astype(float), x, offset, accepted
    )
    learned = fit_weights(design, l2=0.0)
    assert learned["tag"] == pytest.approx(1.5, abs=0.2)
    assert math.isfinite(learned["album_bias"])


def test_the_artist_s_tracks_off_the_album_are_weaker_evidence_of_their_own():
    def track(p: float, album: str | None) -> LibraryTrack:
        return LibraryTrack(rock(p), TrackEvidence(artist="X", album=album), folder="f")

    tracks = [track(0.9, "A"), track(0.7, "A"), track(0.2, "B"), track(0.4, None)]
    fused = fuse_library(tracks, load_weights(), {})
    first, loose = fused[0].evidence, fused[3].evidence
    assert (first.album_tracks, first.artist_tracks) == (1, 2)
    assert first.album["Rock"] == pytest.approx(0.7)
    assert first.artist["Rock"] == pytest.approx(0.3)  # tracks 2 and 3, off album A
    assert loose.album is None and loose.artist_tracks == 3
    assert loose.artist["Rock"] == pytest.approx((0.9 + 0.7 + 0.2) / 3)
