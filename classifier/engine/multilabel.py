"""Multi-label genre heads: targets with unknowns and ambiguous sets, artist-disjoint folds,
a balanced one-vs-rest logistic head, calibration, and the figures that judge it.

A clip's target for a genre is 1 (it applies), 0 (it does not) or unknown: a style of a genre
that applies (GTZAN's "rock" says nothing of Hard Rock), or a genre of an ambiguous label
("Pop/Rock": at least one of Pop and Rock applies, and the loss asks exactly that).
The head is trained on chunks (each inherits its clip's targets, a clip weighs the same
however many chunks it has) and judged on clips (the mean of its chunks' probabilities).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from classifier.engine.datasets import MER4Q_POP_ROCK, LabelledClip
from classifier.engine.featurecache import WIDTHS
from classifier.engine.head import calibrated_sigmoid
from classifier.engine.headnet import TrainableHead, torch_calibrated_sigmoid
from classifier.engine.labels import MSD_TAGS
from classifier.engine.taxonomy import Taxonomy

# The genres every default head knows, whatever the counts (the list).
CORE_GENRES = (
    "Blues",
    "Classical",
    "Country",
    "Electronic",
    "Folk",
    "Hip-Hop",
    "Jazz",
    "Latin",
    "Metal",
    "Pop",
    "R&B/Soul",
    "Reggae",
    "Rock",
    "World",
)


@dataclass(frozen=True)
class LabelSpace:
    genres: list[str]
    parents: list[int]  # index of each genre's parent, -1 for a top-level genre

    def top_level(self) -> list[int]:
        return [i for i, p in enumerate(self.parents) if p < 0]


def label_space(
    clips: Sequence[LabelledClip],
    taxonomy: Taxonomy,
    min_clips: int = 7,
    min_groups: int = 3,
    *,
    other_top_level: bool = True,
) -> LabelSpace:
    """The core genres plus every style, and (other_top_level) every other top-level genre,
    with enough positive clips from enough artists; a style only where its parent is in."""
    count: dict[str, int] = defaultdict(int)
    groups: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        for genre in clip.positives:
            count[genre] += 1
            groups[genre].add(clip.group if clip.source != "gtzan" else str(clip.path))
    enough = {g for g in count if count[g] >= min_clips and len(groups[g]) >= min_groups}
    chosen = set(CORE_GENRES)
    if other_top_level:
        chosen |= {g for g in enough if taxonomy.parent_of(g) is None}
    chosen |= {g for g in enough if taxonomy.parent_of(g) in chosen}
    genres = [g.name for g in taxonomy.genres if g.name in chosen]
    index = {g: i for i, g in enumerate(genres)}
    return LabelSpace(genres, [index.get(taxonomy.parent_of(g) or "", -1) for g in genres])


@dataclass
class Targets:
    y: np.ndarray  # (clips, genres): 1, 0, or nan (unknown)
    any_of: list[list[list[int]]]  # per clip: sets of genre indices, at least one applies
    weight: np.ndarray | None = None  # (clips,) how much each clip counts; None: all alike

    def subset(self, rows: Sequence[int]) -> Targets:
        rows = list(rows)
        weight = None if self.weight is None else self.weight[rows]
        return Targets(self.y[rows], [self.any_of[i] for i in rows], weight)


def targets(clips: Sequence[LabelledClip], space: LabelSpace) -> Targets:
    index = {g: i for i, g in enumerate(space.genres)}
    y = np.zeros((len(clips), len(space.genres)), np.float32)
    sets: list[list[list[int]]] = []
    for row, clip in enumerate(clips):
        ambiguous = [sorted(index[g] for g in s if g in index) for s in clip.any_of]
        ambiguous = [s for s in ambiguous if s]
        unknown = {i for s in ambiguous for i in s}
        for i, genre in enumerate(space.genres):
            parent = space.parents[i]
            if genre in clip.positives:
                y[row, i] = 1.0
            elif i in unknown or (
                parent >= 0 and (space.genres[parent] in clip.positives or parent in unknown)
            ):
                y[row, i] = np.nan
        sets.append(ambiguous)
    return Targets(y, sets)


# ---------------------------------------------------------------- folds


def clip_number(clip: LabelledClip) -> int:
    match = re.search(r"(\d+)(?=\.[^.]+$)", clip.path.name)
    return int(match.group(1)) if match else 0


def artist_folds(clips: Sequence[LabelledClip], n_folds: int) -> list[int]:
    """A fold per clip; no artist on two sides. GTZAN's artists follow its numbering, so each of
    its genres is cut into contiguous blocks of numbers (as training.contiguous_folds does);
    elsewhere whole artists are dealt to folds, largest first, each to the fold holding fewest
    clips of its class, so every fold sees every class where the artists allow."""
    fold = [0] * len(clips)
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(clips):
        by_group[clip.group].append(i)
    held: dict[str, list[int]] = defaultdict(lambda: [0] * n_folds)
    sizes = [0] * n_folds
    for _group, members in sorted(by_group.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        if clips[members[0]].source == "gtzan":
            members.sort(key=lambda i: (clip_number(clips[i]), clips[i].path.name))
            for block, chunk in enumerate(np.array_split(np.array(members), n_folds)):
                for i in chunk:
                    fold[int(i)] = block
            continue
        first = clips[members[0]]
        label = f"{first.source}/{first.judged_as or min(first.positives, default='')}"
        k = min(range(n_folds), key=lambda f: (held[label][f], sizes[f], f))
        for i in members:
            fold[i] = k
        held[label][k] += len(members)
        sizes[k] += len(members)
    return fold


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class FitConfig:
    l2: float = 1e-2  # on the weights of standardised features, per genre
    smoothing: float = 0.05  # targets become smoothing/2 and 1 - smoothing/2: noisy labels
    any_of_weight: float = 1.0
    max_iter: int = 200
    seed: int = 0
    hidden: int = 0  # hidden units (0: linear, the default)
    # Train on each clip's mean chunk (one row per clip) rather than on its chunks. For a
    # linear head the mean of a clip's chunk logits is the logit of its mean chunk, so this
    # fits the clip-level evidence; the head still runs per chunk at inference.
    pooled: bool = False
    # Two variants measured by bench/head_variants.py and not shipped (the card's "Training
    # variants"). prior: (genres, features) weights on standardised features that the L2
    # pulls towards instead of zero (tag_prior: the MSD tags' own word on each genre, learned
    # from far more tracks than ours); linear heads only.
    prior: np.ndarray | None = field(default=None, compare=False, repr=False)
    # Weight of a softmax loss over the top-level genres (the clip's positives, or an ambiguous
    # set, against the rest), beside the one-vs-rest loss: the figures judge the best genre.
    top_softmax: float = 0.0


def _rows(
    chunks: Sequence[np.ndarray], clip_weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate(chunks).astype(np.float32)
    owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(chunks)])
    weight = np.concatenate([np.full(len(c), 1.0 / len(c)) for c in chunks])
    if clip_weight is not None:
        weight = weight * clip_weight[owner]
    return x, owner, weight.astype(np.float32)


def fit_multilabel(
    chunks: Sequence[np.ndarray],
    target: Targets,
    space: LabelSpace,
    config: FitConfig | None = None,
) -> TrainableHead:
    """A linear one-vs-rest head on chunk features (a (k, d) array per clip), by L-BFGS
    (config.pooled: on each clip's mean chunk).

    Each genre's loss weighs its positives and its negatives equally (balanced across genres
    whatever their counts); unknown targets add nothing; each ambiguous set adds
    -log P(at least one of its genres).
    """
    config = config or FitConfig()
    torch.manual_seed(config.seed)
    if config.pooled:
        chunks = [np.asarray(c).mean(0, keepdims=True) for c in chunks]
    x_np, owner, w_np = _rows(chunks, target.weight)
    x = torch.from_numpy(x_np)
    y_np = target.y[owner]
    known = torch.from_numpy(~np.isnan(y_np))
    y = torch.from_numpy(np.nan_to_num(y_np, nan=0.0))
    w = torch.from_numpy(w_np)[:, None]
    pos = (known & (y > 0.5)).float() * w
    neg = (known & (y < 0.5)).float() * w
    # Each genre: half its loss from positives, half from negatives, summed over genres.
    balance = pos / pos.sum(0).clamp_min(1e-9) * 0.5 + neg / neg.sum(0).clamp_min(1e-9) * 0.5
    soft = y * (1 - config.smoothing) + config.smoothing / 2
    sets = _set_masks(target, owner, len(space.genres))
    top = torch.tensor(space.top_level())
    top_positive = (
        torch.from_numpy(_top_positives(target, space)[owner]) if config.top_softmax else None
    )
    head = TrainableHead(
        x.shape[1], len(space.genres), config.hidden, multi_label=True, parents=space.parents
    )
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0).clamp_min(1e-6))
    linear = head.net[-1]
    assert isinstance(linear, torch.nn.Linear)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    weights = [m.weight for m in head.net if isinstance(m, torch.nn.Linear)]
    centre = [torch.zeros_like(w) for w in weights]
    if config.prior is not None:
        if config.hidden:
            raise ValueError("a prior centres a linear head's weights: hidden must be 0")
        centre = [torch.from_numpy(np.asarray(config.prior, np.float32))]
        with torch.no_grad():
            linear.weight.copy_(centre[0])
    head.eval()  # no dropout: L-BFGS wants a deterministic loss
    optimiser = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=config.max_iter, line_search_fn="strong_wolfe"
    )
    clip_count = float(len(chunks))

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        z = head(x)
        loss = (balance * F.binary_cross_entropy_with_logits(z, soft, reduction="none")).sum()
        for rows, members in sets:
            log_none = -F.softplus(z[rows][:, members]).sum(1)  # log P(none of them)
            at_least_one = torch.log(-torch.expm1(log_none.clamp_max(-1e-6)))
            loss = loss - config.any_of_weight * (w[rows, 0] * at_least_one).sum() / clip_count
        if top_positive is not None:
            loss = loss + config.top_softmax * _top_softmax_loss(z[:, top], top_positive, w)
        loss = loss + config.l2 * sum(
            (w - c).pow(2).sum() for w, c in zip(weights, centre, strict=True)
        )
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    return head.eval()


def _top_positives(target: Targets, space: LabelSpace) -> np.ndarray:
    """(clips, top-level genres): the clip's positive top-level genres, else those of its
    ambiguous sets (Pop/Rock: either may be the one); a row of False where neither is known."""
    top = space.top_level()
    result = np.zeros((len(target.y), len(top)), bool)
    for row, labels in enumerate(target.y):
        result[row] = labels[top] == 1.0
        if not result[row].any():
            members = {g for s in target.any_of[row] for g in s}
            result[row] = [g in members for g in top]
    return result


def _top_softmax_loss(z_top: torch.Tensor, positive: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """-log of the softmax mass on each chunk's positive top-level genres, weighted as the
    chunk; chunks with none known add nothing."""
    known = positive.any(1)
    everything = torch.logsumexp(z_top[known], 1)
    on_positives = torch.logsumexp(z_top[known].masked_fill(~positive[known], -1e9), 1)
    return (w[known, 0] * (everything - on_positives)).sum() / w.sum()


def tag_prior(feature: str, space: LabelSpace, taxonomy: Taxonomy, strength: float) -> np.ndarray:
    """(genres, features) prior weights: `strength` from each standardised MSD tag score to
    the genres the taxonomy reads that tag as (and their ancestors), zero elsewhere."""
    parts = feature.split("+")
    if "taggram" not in parts:
        raise ValueError(f"{feature}: a tag prior needs the taggram among the features")
    start = sum(WIDTHS[p] for p in parts[: parts.index("taggram")])
    width = sum(WIDTHS[p] for p in parts)
    index = {g: i for i, g in enumerate(space.genres)}
    prior = np.zeros((len(space.genres), width), np.float32)
    for column, tag in enumerate(MSD_TAGS):
        for genre in taxonomy.with_ancestors(taxonomy.candidates(tag)):
            if genre in index:
                prior[index[genre], start + column] = strength
    return prior


def _set_masks(
    target: Targets, owner: np.ndarray, n_genres: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per distinct ambiguous set: the chunk rows that carry it and its genre indices."""
    rows: dict[tuple[int, ...], list[int]] = defaultdict(list)
    clip_sets = [[tuple(s) for s in sets] for sets in target.any_of]
    for row, clip in enumerate(owner):
        for members in clip_sets[clip]:
            rows[members].append(row)
    return [(torch.tensor(r), torch.tensor(list(m))) for m, r in sorted(rows.items())]


def chunk_logits(head: TrainableHead, chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The head's raw (uncalibrated) logits, a (k, genres) array per clip."""
    inference = head.inference()
    return [inference.logits(c) for c in chunks]


def cross_validated_logits(
    chunks: Sequence[np.ndarray],
    target: Targets,
    space: LabelSpace,
    folds: Sequence[int],
    config: FitConfig,
    on_fold: Callable[[int, int], object] | None = None,
) -> list[np.ndarray]:
    """Every clip's chunk logits from a head that never saw its fold."""
    n_folds = max(folds) + 1
    result: list[np.ndarray] = [np.empty(0)] * len(chunks)
    for k in range(n_folds):
        train = [i for i, f in enumerate(folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        if not test:  # more folds than artists allow
            continue
        sub = target.subset(train)
        head = fit_multilabel([chunks[i] for i in train], sub, space, config)
        for i, logits in zip(test, chunk_logits(head, [chunks[i] for i in test]), strict=True):
            result[i] = logits
        if on_fold:
            on_fold(k + 1, n_folds)
    return result


# ---------------------------------------------------------------- calibration


@dataclass
class Calibration:
    method: str  # "none", "temperature" (one scale for all genres), "platt" (per genre)
    scale: np.ndarray
    bias: np.ndarray

    def apply_to(self, head: TrainableHead) -> None:
        """Make this the head's calibration (multi-label heads only)."""
        head.scale.copy_(torch.from_numpy(self.scale))
        head.bias.copy_(torch.from_numpy(self.bias))


def clip_probabilities(
    logits: Sequence[np.ndarray], space: LabelSpace, calibration: Calibration | None = None
) -> np.ndarray:
    """(clips, genres): the mean over each clip's chunks of the calibrated probabilities."""
    n = len(space.genres)
    scale = np.ones(n, np.float32) if calibration is None else calibration.scale
    bias = np.zeros(n, np.float32) if calibration is None else calibration.bias
    parent = np.array(space.parents, dtype=np.int64)
    return np.stack(
        [calibrated_sigmoid(np.asarray(z, np.float32), scale, bias, parent).mean(0) for z in logits]
    )


def fit_calibration(
    logits: Sequence[np.ndarray], target: Targets, space: LabelSpace, method: str
) -> Calibration:
    """Fit the calibration of chunk logits so that clip probabilities (chunk means) match the
    known targets (log loss, clips as they come: their own label frequencies)."""
    n = len(space.genres)
    if method == "none":
        return Calibration(method, np.ones(n, np.float32), np.zeros(n, np.float32))
    sizes = [len(z) for z in logits]
    z = torch.from_numpy(np.concatenate(logits).astype(np.float32))
    owner = torch.from_numpy(np.concatenate([np.full(k, i) for i, k in enumerate(sizes)]))
    counts = torch.tensor(sizes, dtype=torch.float32)[:, None]
    known = torch.from_numpy(~np.isnan(target.y))
    y = torch.from_numpy(np.nan_to_num(target.y, nan=0.0))
    parent = torch.tensor(space.parents, dtype=torch.int64)
    log_scale = torch.zeros(1 if method == "temperature" else n, requires_grad=True)
    bias = torch.zeros(n, requires_grad=method == "platt")
    params = [log_scale] + ([bias] if method == "platt" else [])
    optimiser = torch.optim.LBFGS(params, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        probs = torch_calibrated_sigmoid(z, log_scale.exp().expand(n), bias, parent)
        clip = torch.zeros(len(sizes), n).index_add(0, owner, probs) / counts
        clip = clip.clamp(1e-6, 1 - 1e-6)
        loss = F.binary_cross_entropy(clip[known], y[known]) + 1e-4 * bias.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    optimiser.step(closure)  # type: ignore[no-untyped-call]
    scale = log_scale.detach().exp().expand(n).numpy().astype(np.float32)
    return Calibration(method, scale.copy(), bias.detach().numpy().astype(np.float32))


def cross_fitted_probabilities(
    logits: Sequence[np.ndarray],
    target: Targets,
    space: LabelSpace,
    folds: Sequence[int],
    method: str,
) -> np.ndarray:
    """Clip probabilities where each fold's calibration was fitted on the other folds only."""
    probs = np.zeros((len(logits), len(space.genres)))
    for k in range(max(folds) + 1):
        rest = [i for i, f in enumerate(folds) if f != k]
        test = [i for i, f in enumerate(folds) if f == k]
        if not test:
            continue
        sub = target.subset(rest)
        calibration = fit_calibration([logits[i] for i in rest], sub, space, method)
        probs[test] = clip_probabilities([logits[i] for i in test], space, calibration)
    return probs


def isotonic(probs: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A monotone step map fitted by pool-adjacent-violators (for comparison only: the shipped
    head calibrates logits, which an isotonic map of chunk means cannot be folded into)."""
    order = np.argsort(probs)
    xs, ys = probs[order], y[order].astype(float)
    blocks: list[list[float]] = []  # [sum, count, max x]
    for xv, yv in zip(xs, ys, strict=True):
        blocks.append([yv, 1.0, xv])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            s, c, m = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
            blocks[-1][2] = m
    edges = np.array([b[2] for b in blocks])
    values = np.array([b[0] / b[1] for b in blocks])

    def apply(p: np.ndarray) -> np.ndarray:
        result: np.ndarray = values[np.clip(np.searchsorted(edges, p), 0, len(values) - 1)]
        return result

    return apply


def cross_fitted_isotonic(raw: np.ndarray, target: Targets, folds: Sequence[int]) -> np.ndarray:
    """Per genre isotonic maps of uncalibrated clip probabilities, fitted on the other folds."""
    out = raw.copy()
    for k in range(max(folds) + 1):
        rest = np.array([f != k for f in folds])
        for j in range(raw.shape[1]):
            known = rest & ~np.isnan(target.y[:, j])
            if known.sum() and np.nanmax(target.y[known, j]) > 0:
                out[~rest, j] = isotonic(raw[known, j], target.y[known, j])(raw[~rest, j])
    return out


# ---------------------------------------------------------------- figures


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 10
) -> tuple[float, list[tuple[float, float, int]]]:
    """ECE over equal-width bins, and each non-empty bin's (mean confidence, accuracy, count)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        member = which == b
        if member.any():
            conf, acc = float(confidence[member].mean()), float(correct[member].mean())
            ece += member.mean() * abs(conf - acc)
            table.append((conf, acc, int(member.sum())))
    return float(ece), table


@dataclass
class SourceFigures:
    source: str
    classes: list[str]  # the classes judged (rows of the confusion)
    predicted: list[str]  # the columns of the confusion
    confusion: np.ndarray
    recalls: dict[str, float]
    balanced_accuracy: float
    accuracy: float
    clips: int


@dataclass
class Figures:
    sources: dict[str, SourceFigures]
    per_genre: dict[str, dict[str, float]]  # precision, recall, F1, support at p >= 0.5
    top_label_ece: float
    label_ece: float
    reliability: list[tuple[float, float, int]]  # top-label bins
    label_reliability: list[tuple[float, float, int]]
    extra: dict[str, float] = field(default_factory=dict)

    def headline(self) -> dict[str, float]:
        s = self.sources
        return {
            "gtzan_accuracy": s["gtzan"].accuracy,
            "emotify_balanced_accuracy": s["emotify"].balanced_accuracy,
            "mer4q_balanced_accuracy": s["mer4q"].balanced_accuracy,
            "top_label_ece": self.top_label_ece,
            "label_ece": self.label_ece,
            **self.extra,
        }


GTZAN_CLASSES = (
    "Blues",
    "Classical",
    "Country",
    "Disco",
    "Hip-Hop",
    "Jazz",
    "Metal",
    "Pop",
    "Reggae",
    "Rock",
)


def _judge(
    source: str,
    clips: Sequence[LabelledClip],
    probs: np.ndarray,
    space: LabelSpace,
    candidates: list[int],
    accepts: Callable[[str, str], bool],
) -> SourceFigures:
    rows = [i for i, c in enumerate(clips) if c.source == source and c.judged_as]
    classes = sorted({str(clips[i].judged_as) for i in rows})
    names = [space.genres[j] for j in candidates]
    confusion = np.zeros((len(classes), len(names)), int)
    hits: dict[str, list[bool]] = defaultdict(list)
    for i in rows:
        truth = str(clips[i].judged_as)
        best = names[int(np.argmax(probs[i, candidates]))]
        confusion[classes.index(truth), names.index(best)] += 1
        hits[truth].append(accepts(truth, best))
    recalls = {c: float(np.mean(hits[c])) for c in classes}
    correct = sum(sum(h) for h in hits.values())
    return SourceFigures(
        source,
        classes,
        names,
        confusion,
        recalls,
        float(np.mean(list(recalls.values()))) if recalls else 0.0,
        correct / max(1, len(rows)),
        len(rows),
    )


def _accepts(truth: str, best: str) -> bool:
    return best in ("Pop", "Rock") if truth == MER4Q_POP_ROCK else best == truth


def figures(
    clips: Sequence[LabelledClip], probs: np.ndarray, target: Targets, space: LabelSpace
) -> Figures:
    """The model card's figures from out-of-fold clip probabilities.

    GTZAN: accuracy of the best of its ten classes. emotify and mer4q: the best top-level genre
    of the whole head (no restriction to the classes judged), balanced accuracy over the
    classes judged (mer4q's Pop/Rock is right as Pop or Rock). Per genre: precision, recall and
    F1 of p >= 0.5 over the clips whose target is known. Top-label ECE: the probability of the
    best top-level genre against whether it applies, over the clips where that is known (not
    where it is one genre of an ambiguous label: "Pop/Rock" does not say whether Pop applies).
    """
    index = {g: i for i, g in enumerate(space.genres)}
    top = space.top_level()
    sources = {
        "gtzan": _judge(
            "gtzan",
            clips,
            probs,
            space,
            [index[g] for g in GTZAN_CLASSES if g in index],
            lambda t, b: t == b,
        ),
        "emotify": _judge("emotify", clips, probs, space, top, _accepts),
        "mer4q": _judge("mer4q", clips, probs, space, top, _accepts),
    }
    per_genre = {}
    for j, genre in enumerate(space.genres):
        known = ~np.isnan(target.y[:, j])
        truth, said = target.y[known, j] > 0.5, probs[known, j] >= 0.5
        tp = float((truth & said).sum())
        precision = tp / said.sum() if said.sum() else 0.0
        recall = tp / truth.sum() if truth.sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_genre[genre] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(truth.sum()),
        }
    confidence, correct = [], []
    for i in range(len(clips)):
        best = top[int(np.argmax(probs[i, top]))]
        if not np.isnan(target.y[i, best]):  # whether it applies is known
            confidence.append(probs[i, best])
            correct.append(target.y[i, best] > 0.5)
    top_ece, table = expected_calibration_error(np.array(confidence), np.array(correct))
    # The same where one genre of an ambiguous label counts as applying (an upper bound on
    # the accuracy of those clips, so a lower one on their confidence's fit).
    loose_conf, loose_correct = [], []
    for i, clip in enumerate(clips):
        best = top[int(np.argmax(probs[i, top]))]
        name = space.genres[best]
        ambiguous = any(name in s for s in clip.any_of)
        if ambiguous or not np.isnan(target.y[i, best]):
            loose_conf.append(probs[i, best])
            loose_correct.append(ambiguous or target.y[i, best] > 0.5)
    loose_ece, _ = expected_calibration_error(np.array(loose_conf), np.array(loose_correct))
    known = ~np.isnan(target.y)
    label_ece, label_table = expected_calibration_error(probs[known], target.y[known] > 0.5)
    return Figures(
        sources,
        per_genre,
        top_ece,
        label_ece,
        table,
        label_table,
        {"top_label_ece_ambiguous_as_right": loose_ece},
    )
