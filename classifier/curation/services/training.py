"""A training run: approved samples -> embeddings (cached) -> a multi-label genre head (one-vs-rest,
calibrated, as the default head) -> a model version.

`run_training(run_id)` is what the Celery task calls. It claims the run with a conditional
update, so a run is trained once even when the task is delivered twice.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from classifier.curation.models import Genre, ModelVersion, Sample, TrainingRun
from classifier.curation.services import CurationError
from classifier.curation.services.embeddings import sample_features
from classifier.curation.services.splits import (
    TEST,
    TRAIN,
    VALIDATION,
    SplitItem,
    assign_splits,
    group_keys,
)
from classifier.engine.datasets import LabelledClip
from classifier.engine.errors import EngineError, ModelError, unexpected_error
from classifier.engine.head import (
    HeadInfo,
    head_version,
    load_head,
    save_head,
    track_probabilities,
)
from classifier.engine.headnet import TrainableHead
from classifier.engine.multilabel import (
    FitConfig,
    LabelSpace,
    Targets,
    artist_folds,
    cross_validated_logits,
    figures,
    fit_calibration,
    fit_multilabel,
    targets,
)
from classifier.engine.taxonomy import load_taxonomy
from classifier.engine.training import Evaluation, confusion_png
from classifier.engine.weights import model_version
from classifier.services.active_model import head_path

log = logging.getLogger(__name__)

# A run still "running" with no progress for this long lost its worker; it may be claimed again.
STALE_AFTER = timedelta(minutes=15)
# As the default head: per-genre Platt scaling of the logits, fitted on artist-disjoint folds.
CALIBRATION = "platt"
MAX_CALIBRATION_FOLDS = 4


@dataclass
class Labelled:
    sample: Sample
    labels: frozenset[str]  # the genres it trains under, their parents included
    features: np.ndarray | None = None

    @property
    def primary(self) -> str:
        """The label the split balances genres by: its first top-level genre."""
        return min(self.labels)


def claim(run_id: int) -> bool:
    """pending -> running, exactly once (or take over a run whose worker died)."""
    now = timezone.now()
    stale = Q(status=TrainingRun.Status.RUNNING, updated_at__lt=now - STALE_AFTER)
    return bool(
        TrainingRun.objects.filter(Q(status=TrainingRun.Status.PENDING) | stale, pk=run_id).update(
            status=TrainingRun.Status.RUNNING,
            started_at=now,
            updated_at=now,
            progress=0.0,
            message="starting",
            error="",
        )
    )


def report_progress(run: TrainingRun, fraction: float, message: str) -> None:
    run.progress, run.message = round(fraction, 4), message[:300]
    TrainingRun.objects.filter(pk=run.pk).update(
        progress=run.progress, message=run.message, updated_at=timezone.now()
    )


def run_training(run_id: int) -> TrainingRun | None:
    """Train the run's head; None when another worker has it. Failures end up on the run."""
    if not claim(run_id):
        return None
    run = TrainingRun.objects.get(pk=run_id)
    try:
        train(run)
    except Exception as exc:
        if not isinstance(exc, CurationError | EngineError):
            log.exception("training run %s failed", run_id)
        run.status, run.error = TrainingRun.Status.FAILED, f"{type(exc).__name__}: {exc}"
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "updated_at"])
        return run
    return run


def train(run: TrainingRun) -> None:
    items, report = training_set(run)
    embed(run, items, report)
    items = [i for i in items if i.features is not None]
    parts = split(run, items)
    genres = Genre.objects.in_bulk(field_name="name")
    space = space_of(parts[TRAIN], genres)
    if len(space.genres) < 2:
        raise CurationError("the training split needs at least two genres")
    for side in (VALIDATION, TEST):
        left_out = [i for i in parts[side] if not i.labels & set(space.genres)]
        if left_out:
            report["warnings"].append(
                f"{len(left_out)} {side} samples of genres without training samples were left out"
            )
        parts[side] = [i for i in parts[side] if i.labels & set(space.genres)]
    report["genres"] = list(space.genres)
    report["split"] = {
        side: dict(Counter(g for i in its for g in i.labels if g in space.genres))
        for side, its in parts.items()
    }
    report["artists_on_both_sides"] = _artists_on_both_sides(parts)

    report_progress(run, 0.75, f"training on {len(parts[TRAIN])} samples")
    head, calibration = fit_calibrated(run, parts[TRAIN], space)
    report["calibration"] = calibration

    report_progress(run, 0.85, "evaluating")
    report["validation"] = evaluate_head(head, parts[VALIDATION], space)
    report["test"] = evaluate_head(head, parts[TEST], space)
    report["validation_samples"] = [i.sample.pk for i in parts[VALIDATION]]
    report["train_samples"] = [i.sample.pk for i in parts[TRAIN]]

    report_progress(run, 0.9, "comparing with the active model")
    report["comparison"] = compare_with_active(parts[VALIDATION], space, head)

    version = save_version(run, head, space, genres, report["validation"], calibration)
    if report["validation"] is not None:
        _save_confusion(run, report["validation"])
    run.report, run.model_version = report, version
    run.status, run.progress, run.message = TrainingRun.Status.DONE, 1.0, "done"
    run.finished_at = timezone.now()
    # update_fields: a run deleted meanwhile raises instead of coming back as a new row.
    run.save(
        update_fields=[
            "report",
            "model_version",
            "confusion_png",
            "status",
            "progress",
            "message",
            "finished_at",
            "updated_at",
        ]
    )
    _refresh_verdicts(run)


def fit_config(run: TrainingRun) -> FitConfig:
    return FitConfig(l2=run.weight_decay, max_iter=run.epochs, seed=run.seed, hidden=run.hidden)


def training_set(run: TrainingRun) -> tuple[list[Labelled], dict]:
    """Approved samples with the labels they train under; genres too small to split dropped."""
    report: dict = {"warnings": [], "skipped_samples": [], "dropped_genres": {}}
    samples = list(
        Sample.objects.filter(status=Sample.Status.APPROVED)
        .prefetch_related("genres")
        .order_by("pk")
    )
    labels = _labels(samples, run.roll_up_subgenres)
    counts = Counter(g for names in labels.values() for g in names)
    small = {g: n for g, n in counts.items() if n < 2}
    if small:
        report["dropped_genres"] = small
        report["warnings"].append(
            "genres with fewer than 2 approved samples were left out: " + ", ".join(sorted(small))
        )
    items = [Labelled(s, labels[s.pk] - set(small)) for s in samples]
    unlabelled = [i for i in items if not i.labels]
    if unlabelled:
        report["warnings"].append(
            f"{len(unlabelled)} approved samples had no genre left to train on and were left out"
        )
    items = [i for i in items if i.labels]
    if len({g for i in items for g in i.labels}) < 2:
        raise CurationError(
            "a training run needs at least two genres with 2 or more approved "
            f"samples each (approved now: {dict(counts) or 'none'})"
        )
    return items, report


def _labels(samples: list[Sample], roll_up: bool) -> dict[int, frozenset[str]]:
    """Each sample's genres with every ancestor (a style implies its genre); rolled up: only
    the top-level genres."""
    genres = {g.pk: g for g in Genre.objects.all()}
    for genre in genres.values():  # the parent chain from memory, not a query per step
        genre.parent = genres.get(genre.parent_id)
    result = {}
    for sample in samples:
        own = [genres[g.pk] for g in sample.genres.all()]
        if roll_up:
            result[sample.pk] = frozenset(g.top_level().name for g in own)
        else:
            result[sample.pk] = frozenset(a.name for g in own for a in _lineage(g))
    return result


def _lineage(genre: Genre) -> list[Genre]:
    """The genre and its ancestors (a cycle stops at the repeat)."""
    chain, seen = [genre], {genre.pk}
    while chain[-1].parent is not None and chain[-1].parent.pk not in seen:
        seen.add(chain[-1].parent.pk)
        chain.append(chain[-1].parent)
    return chain


def split(run: TrainingRun, items: list[Labelled]) -> dict[str, list[Labelled]]:
    """train, validation and test: pinned samples stay, the rest whole artists at a time."""
    sides = assign_splits([_split_item(i) for i in items], run.validation_fraction, run.seed)
    return {
        side: [i for i in items if sides[i.sample.pk] == side] for side in (TRAIN, VALIDATION, TEST)
    }


def _split_item(item: Labelled) -> SplitItem:
    sample = item.sample
    name = sample.original_name or sample.audio.name
    return SplitItem(sample.pk, item.primary, sample.artist, name, sample.split)


def space_of(items: list[Labelled], genres: dict[str, Genre]) -> LabelSpace:
    """The genres with training samples, each style pointing at its nearest ancestor there."""
    names = sorted({g for i in items for g in i.labels})
    index = {g: k for k, g in enumerate(names)}
    parents = []
    for name in names:
        ancestors = _lineage(genres[name])[1:] if name in genres else []
        parents.append(next((index[a.name] for a in ancestors if a.name in index), -1))
    return LabelSpace(names, parents)


def clips_of(items: list[Labelled]) -> list[LabelledClip]:
    """The engine's view of the samples: their labels and their artist groups."""
    groups = group_keys([_split_item(i) for i in items], 0.25)
    return [
        LabelledClip(
            Path(i.sample.audio.name), "curation", groups[i.sample.pk], i.labels, raw=str(i.sample)
        )
        for i in items
    ]


def fit_calibrated(
    run: TrainingRun, items: list[Labelled], space: LabelSpace
) -> tuple[TrainableHead, dict]:
    """The one-vs-rest head on the training side, calibrated on logits of artist-disjoint
    folds of it (each sample's logits from a head that never saw its artist)."""
    clips, chunks = clips_of(items), [i.features for i in items]
    target = targets(clips, space)
    config = fit_config(run)
    n_folds = min(MAX_CALIBRATION_FOLDS, len({c.group for c in clips}))
    method = CALIBRATION if n_folds >= 2 else "none"
    head = fit_multilabel(chunks, target, space, config)
    if method != "none":
        folds = artist_folds(clips, n_folds)
        logits = cross_validated_logits(chunks, target, space, folds, config)
        calibration = fit_calibration(logits, target, space, method)
        calibration.apply_to(head)
    return head, {"method": method, "folds": n_folds if method != "none" else 0}


def evaluate_head(head: TrainableHead, items: list[Labelled], space: LabelSpace) -> dict | None:
    """Figures of the (calibrated) head on held-out samples; None without any."""
    if not items:
        return None
    clips = clips_of(items)
    probs = track_probabilities(head, [i.features for i in items])
    return multilabel_metrics(clips, probs, targets(clips, space), space)


def multilabel_metrics(
    clips: list[LabelledClip], probs: np.ndarray, target: Targets, space: LabelSpace
) -> dict:
    """Per genre precision/recall/F1 at p >= 0.5, calibration errors, and how often the best
    top-level genre applies (the accuracy), with a labels x best-genre table for the picture."""
    fig = figures(clips, probs, target, space)
    top = space.top_level() or list(range(len(space.genres)))
    best = [space.genres[top[int(np.argmax(p[top]))]] for p in probs]
    right = [b in c.positives for b, c in zip(best, clips, strict=True)]
    confusion = np.zeros((len(space.genres), len(space.genres)), dtype=int)
    for clip, said in zip(clips, best, strict=True):
        for genre in clip.positives & set(space.genres):
            confusion[space.genres.index(genre), space.genres.index(said)] += 1
    supported = [m["f1"] for m in fig.per_genre.values() if m["support"]]
    return {
        "samples": len(clips),
        "accuracy": float(np.mean(right)),
        "macro_f1": float(np.mean(supported)) if supported else 0.0,
        "per_genre": fig.per_genre,
        "top_label_ece": fig.top_label_ece,
        "label_ece": fig.label_ece,
        "genres": list(space.genres),
        "confusion": confusion.tolist(),
        "best": best,
    }


def _save_confusion(run: TrainingRun, metrics: dict) -> None:
    evaluation = Evaluation(metrics["genres"], np.array(metrics["confusion"]))
    with tempfile.TemporaryDirectory() as tmp:
        png = confusion_png(
            evaluation,
            Path(tmp) / "confusion.png",
            f"run {run.pk}: validation labels (rows) x best genre",
        )
        with open(png, "rb") as handle:
            run.confusion_png.save(f"run-{run.pk}-confusion.png", File(handle), save=False)


def embed(run: TrainingRun, items: list[Labelled], report: dict) -> None:
    """Features of every sample; cached ones are read, the rest analysed (most of the time)."""
    for n, item in enumerate(items, 1):
        try:
            item.features = sample_features(item.sample, run.feature)
        except Exception as exc:  # typed or not, one sample's failure leaves it out
            error = (
                str(exc)
                if isinstance(exc, EngineError)
                else unexpected_error(log, str(item.sample), exc)
            )
            report["skipped_samples"].append(
                {"id": item.sample.pk, "name": str(item.sample), "error": error}
            )
        report_progress(run, 0.05 + 0.65 * n / len(items), f"analysed {n}/{len(items)} samples")
    if report["skipped_samples"]:
        report["warnings"].append(
            f"{len(report['skipped_samples'])} samples could not be analysed and were left out"
        )


def _artists_on_both_sides(parts: dict[str, list[Labelled]]) -> list[str]:
    train = {i.sample.artist.casefold() for i in parts[TRAIN] if i.sample.artist}
    held = {i.sample.artist.casefold() for i in parts[VALIDATION] if i.sample.artist}
    return sorted(train & held)


def compare_with_active(items: list[Labelled], space: LabelSpace, head: TrainableHead) -> dict:
    """The active model's figures on the same validation samples, and where the two differ.

    The active head's genre names are read through the genre table (an old head's "hiphop"
    is "Hip-Hop"); "right" means the best top-level genre is one of the sample's labels.
    """
    if not items:
        return {"error": "no validation samples"}
    try:
        path = head_path()
        old_head, info, version = load_head(path)
        old_features = [sample_features(i.sample, info.feature) for i in items]
    except (ModelError, EngineError) as exc:
        return {"error": f"no active model to compare with: {exc}"}
    names = [_our_name(g) for g in info.genres]
    old_probs = track_probabilities(old_head, old_features)
    clips = clips_of(items)
    # The active head's probabilities in our label space (0 for genres it does not know).
    mapped = np.zeros((len(items), len(space.genres)))
    for k, name in enumerate(names):
        if name in space.genres:
            mapped[:, space.genres.index(name)] = old_probs[:, k]
    if info.activation != "sigmoid":  # one genre per track: it says only its best
        mapped = (mapped == mapped.max(1, keepdims=True)) & (mapped > 0)
        mapped = mapped.astype(float)
    old_top = [k for k, g in enumerate(info.genres) if g not in info.parents]
    old = [names[old_top[int(np.argmax(p[old_top]))]] for p in old_probs]
    new = evaluate_head(head, items, space)
    assert new is not None
    ours = multilabel_metrics(clips, mapped, targets(clips, space), space)
    truth = [c.positives for c in clips]
    pairs = list(
        zip(
            [o in t for o, t in zip(old, truth, strict=True)],
            [n in t for n, t in zip(new["best"], truth, strict=True)],
            strict=True,
        )
    )
    return {
        "model": model_version(version),
        "head": path.name,
        "trained_on_these": _seen_by_active(version, items),
        "accuracy": float(np.mean([o for o, _ in pairs])),
        "macro_f1": ours["macro_f1"],
        "per_genre": ours["per_genre"],
        "unknown_genres": sorted(set(space.genres) - set(names)),
        "samples": len(items),
        "both_right": sum(o and n for o, n in pairs),
        "only_new_right": sum(n and not o for o, n in pairs),
        "only_active_right": sum(o and not n for o, n in pairs),
        "both_wrong": sum(not o and not n for o, n in pairs),
    }


def _our_name(head_genre: str) -> str:
    genre = Genre.objects.resolve(head_genre)
    return genre.name if genre is not None else head_genre


def _seen_by_active(head_version: str, items: list[Labelled]) -> int | None:
    """How many of the validation samples the active head was trained on (None: unknown).

    Known for heads made by training runs; a bundled or hand-made head does not say.
    """
    version = ModelVersion.objects.filter(version=head_version).first()
    run = version.runs.order_by("pk").first() if version else None
    if run is None or "train_samples" not in run.report:
        return None
    return len({i.sample.pk for i in items} & set(run.report["train_samples"]))


def save_version(
    run: TrainingRun,
    head: TrainableHead,
    space: LabelSpace,
    genres: dict[str, Genre],
    validation: dict | None,
    calibration: dict,
) -> ModelVersion:
    """Write the head file and its ModelVersion (the same weights make the same version)."""
    names = list(space.genres)
    spelling = {g: genres[g].tag_spelling if g in genres else g for g in names}
    accuracy = validation["accuracy"] if validation else None
    info = HeadInfo(
        genres=names,
        feature=run.feature,
        hidden=run.hidden,
        trained_on=f"curation run {run.pk}",
        tag_spelling=spelling,
        notes={
            "run": run.pk,
            "iterations": run.epochs,
            "l2": run.weight_decay,
            "seed": run.seed,
            "calibration": calibration,
            "accuracy": accuracy,
        },
        activation="sigmoid",
        parents={g: names[p] for g, p in zip(names, space.parents, strict=True) if p >= 0},
        taxonomy=load_taxonomy().version,
    )
    version = head_version(head, info)
    existing = ModelVersion.objects.filter(version=version).first()
    if existing is not None:
        return existing
    name = default_storage.generate_filename(f"curation/heads/{version}.safetensors")
    save_head(head, info, Path(default_storage.path(name)))
    return ModelVersion.objects.create(
        version=version,
        model=model_version(version),
        head=name,
        genres=names,
        tag_spelling=spelling,
        accuracy=accuracy,
    )


def _refresh_verdicts(run: TrainingRun) -> None:
    """Verdicts of the active model on every sample already analysed (cheap: features cached)."""
    from classifier.curation.services.verdicts import refresh_verdicts

    try:
        refresh_verdicts(Sample.objects.prefetch_related("genres"), embed_missing=False)
    except (ModelError, EngineError) as exc:
        log.warning("run %s: verdicts not refreshed: %s", run.pk, exc)
