"""`fusion-report`: the fusion rule's weights learned and judged on simulated libraries.

The shared clips (GTZAN, mer4q, emotify) become libraries: mer4q's and emotify's artists give
the albums, file tags come from the labels (some replaced by wrong genres at random, some files
untagged), and the audio's probabilities are out-of-fold predictions of the default head's
recipe. Everything is nested: for each outer artist-disjoint fold, the head that predicts the
fold never saw it, the fusion weights and the flag's threshold are learned on the other folds
from probabilities of heads that never saw the outer fold either, and the figures are read on
the outer fold alone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from classifier.engine.config import CALIBRATION, DEFAULT_FEATURE
from classifier.engine.datasets import LabelledClip, all_sources
from classifier.engine.defaulthead import clip_features
from classifier.engine.evidence import parse_genres, restrict
from classifier.engine.featurecache import ClipOutputs, all_outputs
from classifier.engine.fusion import (
    FEATURES,
    MIN_ALBUM_OTHERS,
    AlbumPool,
    Evidence,
    FusionWeights,
    agrees,
    album_distance,
    fuse,
    logit,
    tag_reliability,
    terms,
)
from classifier.engine.multilabel import (
    FitConfig,
    LabelSpace,
    Targets,
    artist_folds,
    cross_fitted_probabilities,
    cross_validated_logits,
    label_space,
    targets,
)
from classifier.engine.runner import Engine
from classifier.engine.taxonomy import Taxonomy, load_taxonomy

# The head's L2 is fixed, not chosen (the default head's middle grid value): choosing it
# would need a third level of nesting and costs minutes for little.
HEAD_L2 = 0.1
N_FOLDS = 5
OOF_VERSION = "1"
FLAG_QUANTILE = 0.97


@dataclass
class Corpus:
    """The clips, their labels and out-of-fold audio probabilities for every nesting level."""

    clips: list[LabelledClip]
    space: LabelSpace
    target: Targets
    folds: list[int]
    outer: np.ndarray  # (clips, genres): each clip predicted by a head that never saw its fold
    # inner[k]: (clips, genres) for clips outside fold k, predicted by heads trained without
    # fold k and without the clip's own fold (rows of fold k are nan).
    inner: list[np.ndarray]


def _oof(
    chunks: Sequence[np.ndarray],
    target: Targets,
    space: LabelSpace,
    folds: Sequence[int],
) -> np.ndarray:
    logits = cross_validated_logits(chunks, target, space, folds, FitConfig(l2=HEAD_L2))
    return cross_fitted_probabilities(logits, target, space, folds, CALIBRATION)


def _inner(
    chunks: Sequence[np.ndarray], target: Targets, space: LabelSpace, folds: list[int], k: int
) -> np.ndarray:
    rows = [i for i, f in enumerate(folds) if f != k]
    remap = {f: j for j, f in enumerate(sorted({folds[i] for i in rows}))}
    sub_folds = [remap[folds[i]] for i in rows]
    probs = np.full((len(folds), len(space.genres)), np.nan)
    probs[rows] = _oof([chunks[i] for i in rows], target.subset(rows), space, sub_folds)
    return probs


def _cache_key(clips: Sequence[LabelledClip], space: LabelSpace) -> str:
    text = "|".join([OOF_VERSION, DEFAULT_FEATURE, str(HEAD_L2), CALIBRATION, *space.genres])
    text += "|".join(f"{c.path.name}:{c.group}:{sorted(c.positives)}" for c in clips)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_corpus(
    shared: Path,
    cache: Path,
    err: TextIO,
    engine: Callable[[], Engine],
    taxonomy: Taxonomy | None = None,
) -> Corpus:
    """The shared clips with nested out-of-fold probabilities (cached beside the CNN outputs,
    since they take minutes: 25 head fits)."""
    taxonomy = taxonomy or load_taxonomy()
    clips = all_sources(shared, taxonomy)
    outputs = _outputs(clips, cache, engine)
    clips = [c for c in clips if c.path in outputs]
    space = label_space(clips, taxonomy)
    target = targets(clips, space)
    folds = artist_folds(clips, N_FOLDS)
    stored = cache / f"fusion-oof-{_cache_key(clips, space)}.npz"
    if stored.is_file():
        with np.load(stored) as data:
            return Corpus(clips, space, target, folds, data["outer"], list(data["inner"]))
    chunks = [clip_features(outputs[c.path], DEFAULT_FEATURE) for c in clips]
    err.write("out-of-fold audio probabilities: outer folds\n")
    outer = _oof(chunks, target, space, folds)
    inner = []
    for k in range(N_FOLDS):
        err.write(f"out-of-fold audio probabilities: inner folds without fold {k + 1}\n")
        inner.append(_inner(chunks, target, space, folds, k))
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(stored, outer=outer, inner=np.stack(inner))
    return Corpus(clips, space, target, folds, outer, inner)


def _outputs(
    clips: Sequence[LabelledClip], cache: Path, engine: Callable[[], Engine]
) -> dict[Path, ClipOutputs]:
    """The CNN outputs of the clips: from the cache, the CNN loaded only where one is missing
    (loading it costs seconds that a filled cache does not need)."""
    paths = [c.path for c in clips]
    try:
        # No clip reaches the engine when every one is cached; a missing one raises first.
        return all_outputs(None, paths, cache, _raise)  # type: ignore[arg-type]
    except _Missing:
        return all_outputs(engine(), paths, cache)


class _Missing(Exception):
    pass


def _raise(n: int, total: int, path: Path, error: Exception | None) -> None:
    if error is not None:
        raise _Missing(str(path))


# ---------------------------------------------------------------- simulated libraries


@dataclass(frozen=True)
class Scenario:
    """How a simulated library's files are tagged and filed."""

    name: str
    wrong: float | None  # share of tagged files whose genre tag is wrong; None: no tags at all
    untagged: float = 0.1  # share of files without a genre tag
    albums: bool = False  # whether album (and artist) evidence is given
    loose: float = 0.0  # share of mer4q/emotify files with no album name (artist evidence only)


@dataclass
class Case:
    """One track of a simulated library: what fusion sees, and the truth it is judged by."""

    clip: int
    audio: dict[str, float]
    evidence: Evidence
    tagged: bool


TRAINING_MIX = (
    Scenario("tags right", 0.0),
    Scenario("20% wrong", 0.2),
    Scenario("50% wrong", 0.5),
    Scenario("tags right, albums", 0.0, albums=True, loose=0.25),
    Scenario("20% wrong, albums", 0.2, albums=True, loose=0.25),
    Scenario("50% wrong, albums", 0.5, albums=True, loose=0.25),
    Scenario("albums, no tags", None, albums=True, loose=0.25),
)


class Truth:
    """The genres a clip's top-1 may be (its positives and every ambiguous candidate) and the
    tags its file would carry."""

    def __init__(self, corpus: Corpus, taxonomy: Taxonomy) -> None:
        self.space = corpus.space
        self.genres = list(corpus.space.genres)
        self.parents = {
            g: self.genres[p]
            for g, p in zip(self.genres, corpus.space.parents, strict=True)
            if p >= 0
        }
        self.tops = [g for g in self.genres if g not in self.parents]
        self.accepted = [
            (set(c.positives) | {g for s in c.any_of for g in s}) & set(self.genres)
            for c in corpus.clips
        ]
        self.tags = [restrict(_tag_sets(c, taxonomy), self.genres, taxonomy) for c in corpus.clips]
        self.judged = [bool(a & set(self.tops)) for a in self.accepted]

    def wrong_tag(self, clip: int, rng: np.random.Generator) -> list[frozenset[str]]:
        truth = self.accepted[clip] | {self.parents.get(g, g) for g in self.accepted[clip]}
        choices = [g for g in self.tops if g not in truth]
        return [frozenset([choices[int(rng.integers(len(choices)))]])]

    def correct(self, clip: int, probs: dict[str, float]) -> bool:
        return max(probs, key=probs.__getitem__) in self.accepted[clip]


def _tag_sets(clip: LabelledClip, taxonomy: Taxonomy) -> list[frozenset[str]]:
    """What the clip's file would say: its source's own label, as a tagger writes it."""
    raw = clip.raw.split(": ", 1)[-1] if clip.source == "emotify" else clip.raw
    return [v.genres for v in parse_genres([raw], taxonomy) if v.known]


def simulate(
    corpus: Corpus,
    truth: Truth,
    rows: Sequence[int],
    probs: np.ndarray,
    scenario: Scenario,
    rng: np.random.Generator,
) -> list[Case]:
    """The library of clips `rows` (audio probabilities: probs' rows) under `scenario`."""
    cases = []
    for i in rows:
        audio = {g: float(p) for g, p in zip(truth.genres, probs[i], strict=True)}
        tags: list[frozenset[str]] = []
        if scenario.wrong is not None and rng.random() >= scenario.untagged:
            tags = truth.wrong_tag(i, rng) if rng.random() < scenario.wrong else truth.tags[i]
        cases.append(Case(i, audio, Evidence(file_tag=tags), bool(tags)))
    agreement = [agrees(c.audio, c.evidence.file_tag, truth.parents) for c in cases if c.tagged]
    for case in cases:
        case.evidence.tag_reliability = tag_reliability(agreement)
    if scenario.albums:
        _file_albums(corpus, cases, scenario.loose, rng)
    return cases


def _file_albums(corpus: Corpus, cases: list[Case], loose: float, rng: np.random.Generator) -> None:
    """Albums from the artists (GTZAN's clips stay loose: its groups are genres, not
    artists); a loose track is judged by its artist's other tracks, an album track by its
    album and by its artist's loose tracks."""
    albums, artists = AlbumPool(), AlbumPool()
    on_album = {}
    for n, case in enumerate(cases):
        clip = corpus.clips[case.clip]
        if clip.source == "gtzan":
            continue
        on_album[n] = rng.random() >= loose
        (albums if on_album[n] else artists).add(clip.group, n, case.audio)
    for n, case in enumerate(cases):
        if n not in on_album:
            continue
        group = corpus.clips[case.clip].group
        if on_album[n]:
            case.evidence.album, case.evidence.album_tracks = albums.others(group, n)
            case.evidence.artist, case.evidence.artist_tracks = artists.others(group, n)
        else:
            pool = AlbumPool()
            for m, other in enumerate(cases):
                if m != n and m in on_album and corpus.clips[other.clip].group == group:
                    pool.add(group, m, other.audio)
            case.evidence.artist, case.evidence.artist_tracks = pool.others(group, n)


# ---------------------------------------------------------------- learning the weights


BIASES = ("album_bias", "artist_bias")  # shift every genre alike: calibration, not ranking


@dataclass
class Design:
    """The rule's terms on simulated tracks, in the two shapes the two fitting steps use."""

    x: np.ndarray  # (rows, features): one row per track and genre whose target is known
    offset: np.ndarray  # (rows,) the audio's logit
    y: np.ndarray  # (rows,) the target
    top_x: np.ndarray  # (tracks, top-level genres, features): judged tracks only
    top_offset: np.ndarray  # (tracks, top-level genres)
    top_accepted: np.ndarray  # (tracks, top-level genres) bool: a right answer


def design(cases: Sequence[Case], corpus: Corpus, truth: Truth) -> Design:
    x, offset, y, top_x, top_offset, accepted = [], [], [], [], [], []
    for case in cases:
        row = corpus.target.y[case.clip]
        found = {g: terms(g, case.evidence, truth.parents) for g in truth.genres}
        for j, genre in enumerate(truth.genres):
            if not np.isnan(row[j]):
                x.append([found[genre][k] for k in FEATURES])
                offset.append(logit(case.audio[genre]))
                y.append(row[j])
        if truth.judged[case.clip]:
            top_x.append([[found[g][k] for k in FEATURES] for g in truth.tops])
            top_offset.append([logit(case.audio[g]) for g in truth.tops])
            accepted.append([g in truth.accepted[case.clip] for g in truth.tops])
    return Design(
        np.array(x, np.float64),
        np.array(offset, np.float64),
        np.array(y, np.float64),
        np.array(top_x, np.float64),
        np.array(top_offset, np.float64),
        np.array(accepted, bool),
    )


def fit_weights(d: Design, l2: float = 1e-3) -> dict[str, float]:
    """The weights, in two steps. First those that rank the genres, by the log loss of a
    right top-level genre coming first (a softmax over the top-level genres: what top-1
    asks); then, with those fixed, the biases by the log loss of every genre's probability
    (they shift all genres alike, so they change no ranking, only the calibration)."""
    import torch
    import torch.nn.functional as F

    ranking = [k for k in FEATURES if k not in BIASES]
    r_idx = [FEATURES.index(k) for k in ranking]
    b_idx = [FEATURES.index(k) for k in BIASES]
    tx, to = torch.from_numpy(d.top_x[..., r_idx]), torch.from_numpy(d.top_offset)
    right = torch.from_numpy(d.top_accepted)
    w = _lbfgs(
        len(ranking),
        lambda w: (
            (
                torch.logsumexp(to + tx @ w, 1)
                - torch.logsumexp((to + tx @ w).masked_fill(~right, -torch.inf), 1)
            ).mean()
            + l2 * w.pow(2).sum()
        ),
    )
    x = torch.from_numpy(d.x)
    fixed = torch.from_numpy(d.offset) + x[:, r_idx] @ w
    y = torch.from_numpy(d.y)
    b = _lbfgs(
        len(BIASES),
        lambda b: (
            F.binary_cross_entropy_with_logits(fixed + x[:, b_idx] @ b, y) + l2 * b.pow(2).sum()
        ),
    )
    found = dict(zip(ranking, w.tolist(), strict=True)) | dict(zip(BIASES, b.tolist(), strict=True))
    return {k: float(found[k]) for k in FEATURES}


def _lbfgs(n: int, loss: Callable[[Any], Any]) -> Any:
    import torch

    w = torch.zeros(n, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([w], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        value: torch.Tensor = loss(w)
        value.backward()  # type: ignore[no-untyped-call]
        return value

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return w.detach()


def library_rows(folds: Sequence[int], k: int) -> list[int]:
    return [i for i, f in enumerate(folds) if f == k]


def learn(
    corpus: Corpus, truth: Truth, probs: np.ndarray, libraries: Sequence[Sequence[int]], seed: int
) -> FusionWeights:
    """Weights and flag threshold learned on these libraries (each simulated under every
    scenario of the training mix)."""
    rng = np.random.default_rng(seed)
    cases = [
        case
        for rows in libraries
        for scenario in TRAINING_MIX
        for _ in range(2)
        for case in simulate(corpus, truth, rows, probs, scenario, rng)
    ]
    weights = fit_weights(design(cases, corpus, truth))
    scores = [s for rows in libraries for s in _genuine_scores(corpus, truth, rows, probs)]
    # Past the 97th percentile of the training libraries' real album tracks: about 3% false
    # flags there, leaving a margin below the 5% asked of libraries never seen.
    threshold = float(np.quantile(scores, FLAG_QUANTILE)) if scores else 0.5
    return FusionWeights(weights, threshold)


# ---------------------------------------------------------------- the far-from-album flag


def _albums(corpus: Corpus, rows: Sequence[int]) -> dict[str, list[int]]:
    """The simulated albums among `rows` that the flag can judge (enough other tracks)."""
    found: dict[str, list[int]] = {}
    for i in rows:
        if corpus.clips[i].source != "gtzan":
            found.setdefault(corpus.clips[i].group, []).append(i)
    return {g: m for g, m in found.items() if len(m) > MIN_ALBUM_OTHERS}


def _audio(truth: Truth, probs: np.ndarray, i: int) -> dict[str, float]:
    return {g: float(p) for g, p in zip(truth.genres, probs[i], strict=True)}


def _genuine_scores(
    corpus: Corpus, truth: Truth, rows: Sequence[int], probs: np.ndarray
) -> list[float]:
    scores = []
    for members in _albums(corpus, rows).values():
        pool = AlbumPool()
        for i in members:
            pool.add(0, i, _audio(truth, probs, i))
        for i in members:
            album, _ = pool.others(0, i)
            scores.append(album_distance(_audio(truth, probs, i), album, truth.parents))
    return scores


def _planted_scores(
    corpus: Corpus,
    truth: Truth,
    rows: Sequence[int],
    probs: np.ndarray,
    rng: np.random.Generator,
) -> list[float]:
    """One intruder per album: a track of another artist none of whose genres the album's
    tracks carry, scored against the album's own tracks."""
    scores = []
    for group, members in _albums(corpus, rows).items():
        genres = {truth.parents.get(g, g) for i in members for g in truth.accepted[i]}
        strangers = [
            i
            for i in rows
            if corpus.clips[i].group != group
            and truth.judged[i]
            and not {truth.parents.get(g, g) for g in truth.accepted[i]} & genres
        ]
        if not strangers:
            continue
        intruder = strangers[int(rng.integers(len(strangers)))]
        pool = AlbumPool()
        for i in members:
            pool.add(0, i, _audio(truth, probs, i))
        scores.append(
            album_distance(_audio(truth, probs, intruder), pool.verdict(0), truth.parents)
        )
    return scores


# ---------------------------------------------------------------- judging on outer folds


@dataclass
class Tally:
    final: int = 0  # tracks whose fused best genre is one of theirs
    audio: int = 0  # the same for the audio alone
    total: int = 0

    def add(self, final: bool, audio: bool) -> None:
        self.final += final
        self.audio += audio
        self.total += 1


REPORTED = (
    ("tags right (tagged tracks)", Scenario("tags right", 0.0), "tagged"),
    ("tags right (all tracks, 10% untagged)", Scenario("tags right", 0.0), "all"),
    ("20% of tags wrong", Scenario("20% wrong", 0.2), "all"),
    ("50% of tags wrong", Scenario("50% wrong", 0.5), "all"),
    ("20% wrong + albums", Scenario("20% wrong, albums", 0.2, albums=True), "all"),
    ("50% wrong + albums", Scenario("50% wrong, albums", 0.5, albums=True), "all"),
    ("albums, no tags (artists with 3+ tracks)", Scenario("albums", None, albums=True), "3+"),
    ("albums, no tags (all tracks)", Scenario("albums", None, albums=True), "all"),
)


def judge_fold(
    corpus: Corpus,
    truth: Truth,
    rows: Sequence[int],
    weights: FusionWeights,
    seeds: int,
    rng: np.random.Generator,
) -> tuple[dict[str, Tally], Tally, Tally]:
    """The reported figures on one library (an outer fold): per scenario, and the flag's
    (planted tracks caught, real album tracks flagged) as Tallies whose `final` counts flags."""
    probs = corpus.outer
    sizes: dict[str, int] = {}
    for i in rows:
        sizes[corpus.clips[i].group] = sizes.get(corpus.clips[i].group, 0) + 1
    tallies = {name: Tally() for name, _, _ in REPORTED}
    for name, scenario, which in REPORTED:
        for _ in range(seeds):
            for case in simulate(corpus, truth, rows, probs, scenario, rng):
                clip = corpus.clips[case.clip]
                if not truth.judged[case.clip] or (which == "tagged" and not case.tagged):
                    continue
                if which == "3+" and (clip.source == "gtzan" or sizes[clip.group] < 3):
                    continue
                fused = fuse(case.audio, case.evidence, weights, truth.parents)
                tallies[name].add(
                    truth.correct(case.clip, fused), truth.correct(case.clip, case.audio)
                )
    caught, false = Tally(), Tally()
    for score in _genuine_scores(corpus, truth, rows, probs):
        false.add(score > weights.flag_threshold, False)
    for _ in range(seeds):
        for score in _planted_scores(corpus, truth, rows, probs, rng):
            caught.add(score > weights.flag_threshold, False)
    return tallies, caught, false


@dataclass
class Report:
    tallies: dict[str, Tally]
    caught: Tally
    false_flags: Tally
    fold_weights: list[FusionWeights]
    audio_alone: Tally


def cross_validate(corpus: Corpus, seeds: int, err: TextIO, seed: int = 0) -> Report:
    """Weights learned on the inner folds, figures read on the outer ones, summed over folds."""
    taxonomy = load_taxonomy()
    truth = Truth(corpus, taxonomy)
    rng = np.random.default_rng(seed)
    total = {name: Tally() for name, _, _ in REPORTED}
    caught, false, audio = Tally(), Tally(), Tally()
    chosen = []
    for k in range(N_FOLDS):
        inner = [library_rows(corpus.folds, j) for j in range(N_FOLDS) if j != k]
        weights = learn(corpus, truth, corpus.inner[k], inner, seed + k)
        chosen.append(weights)
        err.write(f"fold {k + 1}/{N_FOLDS}: weights {_short(weights)}\n")
        rows = library_rows(corpus.folds, k)
        tallies, c, f = judge_fold(corpus, truth, rows, weights, seeds, rng)
        for name, tally in tallies.items():
            _merge(total[name], tally)
        _merge(caught, c)
        _merge(false, f)
        for i in rows:
            if truth.judged[i]:
                audio.add(truth.correct(i, _audio(truth, corpus.outer, i)), False)
    return Report(total, caught, false, chosen, audio)


def _merge(into: Tally, tally: Tally) -> None:
    into.final += tally.final
    into.audio += tally.audio
    into.total += tally.total


def _short(weights: FusionWeights) -> str:
    text = ", ".join(f"{k} {v:.2f}" for k, v in weights.weights.items())
    return f"{text}; flag past {weights.flag_threshold:.3f}"


# ---------------------------------------------------------------- the table and the file


def targets_met(report: Report) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of the issue's targets."""
    t = report.tallies

    def rate(tally: Tally, which: str = "final") -> float:
        return float(getattr(tally, which)) / max(tally.total, 1)

    right = t["tags right (tagged tracks)"]
    w20, w50 = t["20% of tags wrong"], t["50% of tags wrong"]
    alb = t["albums, no tags (artists with 3+ tracks)"]
    caught, false = rate(report.caught), rate(report.false_flags)
    return [
        ("tags right: final top-1 >= 0.98", f"{rate(right):.3f}", rate(right) >= 0.98),
        (
            "20% wrong: final >= audio + 10 points",
            _versus(w20),
            rate(w20) - rate(w20, "audio") >= 0.10,
        ),
        (
            "50% wrong: final >= audio - 1 point",
            _versus(w50),
            rate(w50) - rate(w50, "audio") >= -0.01,
        ),
        (
            "albums alone, artists with 3+ tracks: >= audio + 5 points",
            _versus(alb),
            rate(alb) - rate(alb, "audio") >= 0.05,
        ),
        (
            "far-from-album flag: >= 80% caught, <= 5% false",
            f"{caught:.1%} of {report.caught.total} caught, {false:.1%} of "
            f"{report.false_flags.total} false",
            caught >= 0.8 and false <= 0.05,
        ),
    ]


def _versus(tally: Tally) -> str:
    final, audio = tally.final / max(tally.total, 1), tally.audio / max(tally.total, 1)
    return f"{final:.3f} vs {audio:.3f} ({100 * (final - audio):+.1f})"


def table(report: Report) -> str:
    lines = [
        "Top-1: the fused best genre is one of the clip's genres (its labels, their parents, "
        "or any candidate of an ambiguous label such as Pop/Rock); clips with no top-level "
        "genre of the head are not judged. Outer folds of artist-disjoint CV, summed.",
        "",
        f"{'scenario':<44} {'tracks':>7} {'audio':>7} {'fused':>7} {'gain':>7}",
    ]
    for name, tally in report.tallies.items():
        a, f = tally.audio / max(tally.total, 1), tally.final / max(tally.total, 1)
        lines.append(f"{name:<44} {tally.total:>7} {a:>7.3f} {f:>7.3f} {100 * (f - a):>+7.1f}")
    lines += ["", f"{'target':<58} {'measured':<44} met"]
    lines += [f"{n:<58} {m:<44} {'yes' if ok else 'NO'}" for n, m, ok in targets_met(report)]
    return "\n".join(lines) + "\n"


def figures_json(report: Report) -> dict[str, Any]:
    return {
        "scenarios": {
            name: {
                "tracks": t.total,
                "audio_top1": round(t.audio / max(t.total, 1), 4),
                "fused_top1": round(t.final / max(t.total, 1), 4),
            }
            for name, t in report.tallies.items()
        },
        "flag": {
            "planted": report.caught.total,
            "caught": round(report.caught.final / max(report.caught.total, 1), 4),
            "genuine": report.false_flags.total,
            "false_flags": round(report.false_flags.final / max(report.false_flags.total, 1), 4),
        },
        "targets": [{"target": n, "measured": m, "met": ok} for n, m, ok in targets_met(report)],
    }


def final_weights(corpus: Corpus, report: Report, seeds: int) -> FusionWeights:
    """The shipped weights: learned the same way on every library, with the CV figures."""
    truth = Truth(corpus, load_taxonomy())
    libraries = [library_rows(corpus.folds, k) for k in range(N_FOLDS)]
    learned = learn(corpus, truth, corpus.outer, libraries, seed=N_FOLDS)
    about = {
        "rule": "logit p_final(g) = logit p_audio(g) + sum_k w_k e_k(g); see fusion.py",
        "made_by": "python -m classifier.engine fusion-report --write",
        "trained_on": "simulated libraries of gtzan_mini, mer4q and emotify "
        f"({len(corpus.clips)} clips), out-of-fold audio probabilities",
        "cv": f"{N_FOLDS}-fold artist-disjoint, nested; {seeds} simulations per scenario and fold",
        "figures": figures_json(report),
    }
    return FusionWeights(learned.weights, learned.flag_threshold, about)


def run_report(
    shared: Path,
    cache: Path,
    engine: Callable[[], Engine],
    out: TextIO,
    err: TextIO,
    *,
    seeds: int = 5,
    write: Path | None = None,
) -> Report:
    corpus = load_corpus(shared, cache, err, engine)
    report = cross_validate(corpus, seeds, err)
    out.write(table(report))
    if write is not None:
        weights = final_weights(corpus, report, seeds)
        write.write_text(json.dumps(weights.to_json(), indent=1) + "\n", encoding="utf-8")
        out.write(f"wrote {write}: {_short(weights)}\n")
    return report
