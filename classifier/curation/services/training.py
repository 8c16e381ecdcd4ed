"""A training run: approved samples -> embeddings (cached) -> a genre head -> a model version.

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
from classifier.curation.services.splits import TEST, TRAIN, VALIDATION, SplitItem, assign_splits
from classifier.engine.errors import EngineError, ModelError, unexpected_error
from classifier.engine.training import Evaluation, confusion_png, evaluate, fit
from classifier.engine.weights import model_version
from classifier.services.active_model import head_path

log = logging.getLogger(__name__)

# A run still "running" with no progress for this long lost its worker; it may be claimed again.
STALE_AFTER = timedelta(minutes=15)
OTHER = "(other)"


@dataclass
class Labelled:
    sample: Sample
    label: str
    features: np.ndarray | None = None


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
    sides = assign_splits(
        [
            SplitItem(
                i.sample.pk,
                i.label,
                i.sample.artist,
                i.sample.original_name or i.sample.audio.name,
                i.sample.split,
            )
            for i in items
        ],
        run.validation_fraction,
        run.seed,
    )
    parts = {
        side: [i for i in items if sides[i.sample.pk] == side] for side in (TRAIN, VALIDATION, TEST)
    }
    genres = sorted({i.label for i in parts[TRAIN]})
    if len(genres) < 2:
        raise CurationError("the training split needs at least two genres")
    for side in (VALIDATION, TEST):
        left_out = [i for i in parts[side] if i.label not in genres]
        if left_out:
            report["warnings"].append(
                f"{len(left_out)} {side} samples of genres without training samples were left out"
            )
        parts[side] = [i for i in parts[side] if i.label in genres]
    report["genres"] = genres
    report["split"] = {side: dict(Counter(i.label for i in its)) for side, its in parts.items()}
    report["artists_on_both_sides"] = _artists_on_both_sides(parts)

    report_progress(run, 0.75, f"training on {len(parts[TRAIN])} samples")
    head = fit(
        [i.features for i in parts[TRAIN]],
        [genres.index(i.label) for i in parts[TRAIN]],
        len(genres),
        run_config(run),
    )

    report_progress(run, 0.85, "evaluating")
    evaluation = _evaluate(head, parts[VALIDATION], genres)
    report["validation"] = _metrics(evaluation) if evaluation else None
    test = _evaluate(head, parts[TEST], genres)
    report["test"] = _metrics(test) if test else None
    report["validation_samples"] = [i.sample.pk for i in parts[VALIDATION]]
    report["train_samples"] = [i.sample.pk for i in parts[TRAIN]]

    report_progress(run, 0.9, "comparing with the active model")
    report["comparison"] = compare_with_active(parts[VALIDATION], genres, head)

    version = save_version(run, head, genres, evaluation)
    if evaluation is not None:
        with tempfile.TemporaryDirectory() as tmp:
            png = confusion_png(
                evaluation, Path(tmp) / "confusion.png", f"run {run.pk}: validation"
            )
            with open(png, "rb") as handle:
                run.confusion_png.save(f"run-{run.pk}-confusion.png", File(handle), save=False)
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


def run_config(run: TrainingRun):
    from classifier.engine.head import TrainConfig

    return TrainConfig(
        epochs=run.epochs,
        lr=run.learning_rate,
        weight_decay=run.weight_decay,
        hidden=run.hidden,
        seed=run.seed,
    )


def training_set(run: TrainingRun) -> tuple[list[Labelled], dict]:
    """Approved samples with the label they train under; genres too small to split dropped."""
    report: dict = {"warnings": [], "skipped_samples": [], "dropped_genres": {}}
    samples = list(
        Sample.objects.filter(status=Sample.Status.APPROVED).select_related("genre").order_by("pk")
    )
    labels = _labels(samples, run.roll_up_subgenres)
    items = [Labelled(s, labels[s.pk]) for s in samples]
    counts = Counter(i.label for i in items)
    small = {g: n for g, n in counts.items() if n < 2}
    if small:
        report["dropped_genres"] = small
        report["warnings"].append(
            "genres with fewer than 2 approved samples were left out: " + ", ".join(sorted(small))
        )
    items = [i for i in items if i.label not in small]
    if len({i.label for i in items}) < 2:
        raise CurationError(
            "a training run needs at least two genres with 2 or more approved "
            f"samples each (approved now: {dict(counts) or 'none'})"
        )
    return items, report


def _labels(samples: list[Sample], roll_up: bool) -> dict[int, str]:
    if not roll_up:
        return {s.pk: s.genre.name for s in samples}
    genres = {g.pk: g for g in Genre.objects.all()}
    for genre in genres.values():  # the parent chain from memory, not a query per step
        genre.parent = genres.get(genre.parent_id)
    return {s.pk: genres[s.genre_id].top_level().name for s in samples}


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


def _evaluate(head, items: list[Labelled], genres: list[str]) -> Evaluation | None:
    if not items:
        return None
    return evaluate(
        head, [i.features for i in items], [genres.index(i.label) for i in items], genres
    )


def _metrics(evaluation: Evaluation) -> dict:
    return {
        "accuracy": evaluation.accuracy,
        "per_genre": evaluation.per_genre(),
        "confusion": evaluation.confusion.tolist(),
        "genres": evaluation.genres,
        "macro_f1": float(np.mean([m["f1"] for m in evaluation.per_genre().values()])),
    }


def _artists_on_both_sides(parts: dict[str, list[Labelled]]) -> list[str]:
    train = {i.sample.artist.casefold() for i in parts[TRAIN] if i.sample.artist}
    held = {i.sample.artist.casefold() for i in parts[VALIDATION] if i.sample.artist}
    return sorted(train & held)


def compare_with_active(items: list[Labelled], genres: list[str], head) -> dict:
    """The active model's figures on the same validation samples, and where the two differ."""
    from classifier.engine.head import load_head, track_probabilities

    if not items:
        return {"error": "no validation samples"}
    try:
        path = head_path()
        old_head, info, version = load_head(path)
        old_features = [sample_features(i.sample, info.feature) for i in items]
    except (ModelError, EngineError) as exc:
        return {"error": f"no active model to compare with: {exc}"}
    old = [info.genres[k] for k in track_probabilities(old_head, old_features).argmax(1)]
    new = [genres[k] for k in track_probabilities(head, [i.features for i in items]).argmax(1)]
    truth = [i.label for i in items]
    columns = genres + ([OTHER] if any(p not in genres for p in old) else [])
    confusion = np.zeros((len(columns), len(columns)), dtype=int)
    for t, p in zip(truth, old, strict=True):
        confusion[columns.index(t), columns.index(p if p in genres else OTHER)] += 1
    evaluation = Evaluation(columns, confusion)
    per_genre = {g: m for g, m in evaluation.per_genre().items() if g != OTHER}
    return {
        "model": model_version(version),
        "head": path.name,
        "trained_on_these": _seen_by_active(version, items),
        "accuracy": evaluation.accuracy,
        "macro_f1": float(np.mean([m["f1"] for m in per_genre.values()])),
        "per_genre": per_genre,
        "unknown_genres": sorted(set(genres) - set(info.genres)),
        "samples": len(items),
        "both_right": sum(o == t and n == t for o, n, t in zip(old, new, truth, strict=True)),
        "only_new_right": sum(o != t and n == t for o, n, t in zip(old, new, truth, strict=True)),
        "only_active_right": sum(
            o == t and n != t for o, n, t in zip(old, new, truth, strict=True)
        ),
        "both_wrong": sum(o != t and n != t for o, n, t in zip(old, new, truth, strict=True)),
    }


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
    run: TrainingRun, head, genres: list[str], evaluation: Evaluation | None
) -> ModelVersion:
    """Write the head file and its ModelVersion (the same weights make the same version)."""
    from classifier.engine.head import HeadInfo, head_version, save_head

    spelling = dict(Genre.objects.filter(name__in=genres).values_list("name", "tag_spelling"))
    info = HeadInfo(
        genres=genres,
        feature=run.feature,
        hidden=run.hidden,
        trained_on=f"curation run {run.pk}",
        tag_spelling=spelling,
        notes={
            "run": run.pk,
            "epochs": run.epochs,
            "weight_decay": run.weight_decay,
            "learning_rate": run.learning_rate,
            "seed": run.seed,
            "accuracy": evaluation.accuracy if evaluation else None,
        },
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
        genres=genres,
        tag_spelling=spelling,
        accuracy=evaluation.accuracy if evaluation else None,
    )


def _refresh_verdicts(run: TrainingRun) -> None:
    """Verdicts of the active model on every sample already analysed (cheap: features cached)."""
    from classifier.curation.services.verdicts import refresh_verdicts

    try:
        refresh_verdicts(Sample.objects.select_related("genre"), embed_missing=False)
    except (ModelError, EngineError) as exc:
        log.warning("run %s: verdicts not refreshed: %s", run.pk, exc)
