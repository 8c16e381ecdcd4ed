"""The fusion rule: the audio's calibrated probabilities refined by what else is known.

For every genre g of the head, with the audio's probability p_audio(g):

    logit p_final(g) = logit p_audio(g) + sum_k w_k * e_k(g)

and then, as in the head, a genre is raised to its most probable style (a style implies its
parent). The evidence terms e_k(g), each with one learned weight w_k (fusion.json, made by
`python -m classifier.engine fusion-report --write`):

- tag: the file's tags name g (1; a value with n candidates, like "Pop/Rock", 1/n each; a
  style names its parent too);
- tag_reliability: tag times (r - 0.5), r the share of the library's tagged tracks whose tags
  agree with their audio's best genre, so tags count for more in a library whose tags are
  mostly right and for less in one whose tags are often wrong;
- tag_against: the file has tags that map to the taxonomy and none of them names g (nor, for
  a style, its parent);
- album, artist: logit of the mean audio probability of g over the album's other tracks (the
  artist's other tracks off this album), times n/(n+1) for n such tracks, so one other track
  counts for less than ten; album_bias, artist_bias: 1 where that evidence exists (keeps the
  probabilities calibrated, not only the ranking); album_untagged, artist_untagged: the same
  terms again for a file without genre tags (the album's word weighs more where the file says
  nothing itself);
- catalog: as tag, for genres a catalog gives the track (no catalog in the training data: its
  weight is not learned but set to half the tag's, see CATALOG_SHARE).

An album's pooled probabilities are kept as running sums (AlbumPool), so a new track changes
its album's verdict for every other track at the cost of one addition, with no re-analysis.
A track whose audio is far from its album's (1 - the Bhattacharyya coefficient of their
top-level genre distributions) is flagged past a learned threshold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classifier.engine.registry import BUNDLED_DIR

FUSION_FILE = BUNDLED_DIR / "fusion.json"
FEATURES = (
    "tag",
    "tag_reliability",
    "tag_against",
    "album",
    "album_bias",
    "artist",
    "artist_bias",
    "album_untagged",
    "artist_untagged",
)
CATALOG_SHARE = 0.5  # the catalog's weight as a share of the file tag's (not learned)
_EPS = 1e-4  # probabilities are kept off 0 and 1 so every logit is finite
DEFAULT_RELIABILITY = 0.5  # r before a library says otherwise (its term is then 0)
RELIABILITY_PRIOR = 4.0  # tracks' worth of DEFAULT_RELIABILITY a library's r is shrunk to
MIN_ALBUM_OTHERS = 2  # the far-from-album flag needs this many other tracks to judge by


@dataclass(frozen=True)
class FusionWeights:
    weights: dict[str, float]
    flag_threshold: float = 0.5
    about: dict[str, Any] = field(default_factory=dict)  # how they were learned, the figures

    def w(self, name: str) -> float:
        return self.weights.get(name, 0.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "weights": {k: round(v, 4) for k, v in self.weights.items()},
            "flag_threshold": round(self.flag_threshold, 4),
            "about": self.about,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FusionWeights:
        weights = {str(k): float(v) for k, v in dict(data["weights"]).items()}
        unknown = set(weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"fusion weights name unknown evidence {sorted(unknown)}")
        return cls(weights, float(data["flag_threshold"]), dict(data.get("about", {})))


def load_weights(path: Path = FUSION_FILE) -> FusionWeights:
    """The fusion weights of `path` (the bundled ones by default)."""
    return FusionWeights.from_json(json.loads(path.read_text(encoding="utf-8")))


@dataclass
class Evidence:
    """What is known of one track beside its audio."""

    file_tag: list[frozenset[str]] = field(default_factory=list)  # candidate sets
    album: Mapping[str, float] | None = None  # mean audio probabilities of the other tracks
    album_tracks: int = 0  # how many other tracks those are
    artist: Mapping[str, float] | None = None
    artist_tracks: int = 0
    catalog: list[frozenset[str]] = field(default_factory=list)
    tag_reliability: float = DEFAULT_RELIABILITY  # r of the module's docstring


# ---------------------------------------------------------------- the rule


def logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def support(genre: str, sets: Sequence[frozenset[str]], parents: Mapping[str, str]) -> float:
    """How strongly candidate sets name `genre`: 1/n for a set of n that holds it or one of
    its styles (a style implies its parent), the best over the sets; 0 where none does."""
    best = 0.0
    for names in sets:
        if genre in names or any(parents.get(n) == genre for n in names):
            best = max(best, 1.0 / len(names))
    return best


def _against(genre: str, sets: Sequence[frozenset[str]], parents: Mapping[str, str]) -> float:
    if not sets or support(genre, sets, parents) > 0:
        return 0.0
    parent = parents.get(genre)
    # A tag naming only the parent says nothing of its styles (Rock says nothing of Hard Rock).
    return 0.0 if parent is not None and support(parent, sets, parents) > 0 else 1.0


def _pooled(pool: Mapping[str, float] | None, genre: str, tracks: int) -> float:
    if pool is None or tracks < 1 or genre not in pool:
        return 0.0
    return logit(pool[genre]) * tracks / (tracks + 1)


def terms(genre: str, evidence: Evidence, parents: Mapping[str, str]) -> dict[str, float]:
    """Every evidence term e_k(genre) of the rule (the module's docstring)."""
    tag = support(genre, evidence.file_tag, parents)
    album = _pooled(evidence.album, genre, evidence.album_tracks)
    artist = _pooled(evidence.artist, genre, evidence.artist_tracks)
    untagged = float(not evidence.file_tag)
    return {
        "tag": tag,
        "tag_reliability": tag * (evidence.tag_reliability - 0.5),
        "tag_against": _against(genre, evidence.file_tag, parents),
        "album": album,
        "album_bias": float(evidence.album is not None and evidence.album_tracks > 0),
        "artist": artist,
        "artist_bias": float(evidence.artist is not None and evidence.artist_tracks > 0),
        "album_untagged": album * untagged,
        "artist_untagged": artist * untagged,
    }


def fuse(
    audio: Mapping[str, float],
    evidence: Evidence,
    weights: FusionWeights,
    parents: Mapping[str, str],
) -> dict[str, float]:
    """The final probability of every genre of `audio` (see the module's docstring)."""
    catalog_weight = CATALOG_SHARE * weights.w("tag")
    fused = {}
    for genre, p in audio.items():
        z = logit(p) + sum(weights.w(k) * e for k, e in terms(genre, evidence, parents).items())
        z += catalog_weight * support(genre, evidence.catalog, parents)
        fused[genre] = sigmoid(z)
    return raise_parents(fused, parents)


def raise_parents(probs: dict[str, float], parents: Mapping[str, str]) -> dict[str, float]:
    """Each genre at least as probable as its most probable style (a style implies it)."""
    for style, parent in parents.items():
        if style in probs and parent in probs:
            probs[parent] = max(probs[parent], probs[style])
    return probs


def tag_reliability(agreements: Sequence[bool]) -> float:
    """r: the share of a library's tagged tracks whose tags name their audio's best genre,
    shrunk towards DEFAULT_RELIABILITY for a library of few tagged tracks."""
    prior = RELIABILITY_PRIOR * DEFAULT_RELIABILITY
    return (sum(agreements) + prior) / (len(agreements) + RELIABILITY_PRIOR)


def agrees(
    audio: Mapping[str, float], sets: Sequence[frozenset[str]], parents: Mapping[str, str]
) -> bool:
    """Whether the tags name the audio's best top-level genre."""
    tops = {g: p for g, p in audio.items() if g not in parents}
    return bool(tops) and support(max(tops, key=tops.__getitem__), sets, parents) > 0


# ---------------------------------------------------------------- albums


class AlbumPool:
    """Running sums of stored audio probabilities per album: adding, replacing or removing a
    track costs one pass over its genres, and any track's view of its album (the mean over
    the album's other tracks) is read off the sums without touching the other tracks."""

    def __init__(self) -> None:
        self._tracks: dict[Hashable, dict[Hashable, dict[str, float]]] = {}
        self._sums: dict[Hashable, dict[str, float]] = {}

    def add(self, album: Hashable, track: Hashable, probabilities: Mapping[str, float]) -> None:
        """Put (or put again, replacing its old probabilities) `track` on `album`."""
        self.remove(album, track)
        stored = dict(probabilities)
        self._tracks.setdefault(album, {})[track] = stored
        sums = self._sums.setdefault(album, {})
        for genre, p in stored.items():
            sums[genre] = sums.get(genre, 0.0) + p

    def remove(self, album: Hashable, track: Hashable) -> None:
        old = self._tracks.get(album, {}).pop(track, None)
        if old is None:
            return
        sums = self._sums[album]
        for genre, p in old.items():
            sums[genre] -= p
        if not self._tracks[album]:
            del self._tracks[album], self._sums[album]

    def size(self, album: Hashable) -> int:
        return len(self._tracks.get(album, {}))

    def verdict(self, album: Hashable) -> dict[str, float]:
        """The album's mean probabilities over all its tracks."""
        n = self.size(album)
        return {g: s / n for g, s in self._sums.get(album, {}).items()} if n else {}

    def others(self, album: Hashable, track: Hashable) -> tuple[dict[str, float], int]:
        """The mean probabilities of the album's tracks other than `track`, and their count."""
        members = self._tracks.get(album, {})
        own = members.get(track, {})
        n = len(members) - (track in members)
        if n < 1:
            return {}, 0
        sums = self._sums[album]
        return {g: (s - own.get(g, 0.0)) / n for g, s in sums.items()}, n


def album_distance(
    audio: Mapping[str, float], album: Mapping[str, float], parents: Mapping[str, str]
) -> float:
    """How far a track's audio lies from its album's: 1 - the Bhattacharyya coefficient of
    their top-level genre probabilities, each scaled to sum to 1 (0: alike, 1: disjoint)."""
    tops = [g for g in audio if g not in parents and g in album]
    a = sum(audio[g] for g in tops)
    b = sum(album[g] for g in tops)
    if a <= 0 or b <= 0:
        return 0.0
    return 1.0 - sum(math.sqrt(audio[g] / a * album[g] / b) for g in tops)


@dataclass(frozen=True)
class AlbumFlag:
    far: bool  # the track sounds unlike its album: perhaps mislabelled, or misfiled
    score: float  # album_distance
    others: int  # the album's other tracks it was judged against


def far_from_album(
    audio: Mapping[str, float],
    album: Mapping[str, float],
    others: int,
    weights: FusionWeights,
    parents: Mapping[str, str],
) -> AlbumFlag:
    score = album_distance(audio, album, parents) if others else 0.0
    return AlbumFlag(others >= MIN_ALBUM_OTHERS and score > weights.flag_threshold, score, others)
