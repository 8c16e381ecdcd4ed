"""End to end through a real worker: clips with several genres each (mer4q, emotify, imported
from a labels.csv) -> a run started in the admin -> a calibrated multi-label version ->
promoted, and the worker judges the samples with it."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from django.urls import reverse

from classifier.curation.models import ModelVersion, Sample, TrainingRun
from classifier.curation.services.importing import import_folder
from tests.conftest import SHARED, require_shared
from tests.workers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.shared]
WAIT_SECONDS = 240
PER_SOURCE = 8  # 16 clips: light enough for the suite's budget

RUN_FORM = {
    "epochs": 100,
    "weight_decay": 0.01,
    "hidden": 0,
    "feature": "penultimate",
    "validation_fraction": 0.25,
    "seed": 0,
    "notes": "",
}


def _rows(source: Path) -> list[dict[str, str]]:
    with open(source / "labels.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def multi_genre_set(tmp_path_factory) -> Path:
    """A labels.csv folder: emotify clips (Magnatune's tag and Emotify's folder) and mer4q clips
    with two or more AllMusic genres, from different artists, each with its artist."""
    mer4q = require_shared(SHARED / "data" / "mer4q")
    emotify = require_shared(SHARED / "data" / "emotify")
    root = tmp_path_factory.mktemp("multi_genre")
    chosen: list[tuple[Path, str, str]] = []
    seen: set[str] = set()
    for folder in ("classical", "electronic", "rock"):
        picked = [r for r in _rows(emotify) if r["folder"] == folder and r["artist"] not in seen]
        for row in picked[: PER_SOURCE // 4 + 1]:
            seen.add(row["artist"])
            chosen.append((emotify / row["file"], f"{row['genre']};{row['folder']}", row["artist"]))
    several = [
        r for r in _rows(mer4q) if r["genres"].count(";") >= 1 and "Pop/Rock" not in r["genres"]
    ]
    for row in several[:PER_SOURCE]:
        chosen.append((mer4q / row["file"], row["genres"], row["artist"]))
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "genres", "artist"])
        for path, genres, artist in chosen:
            shutil.copy(path, root / path.name)
            writer.writerow([path.name, genres, artist])
    return root


def test_a_multi_label_run_through_a_worker_makes_a_version_that_promotes(
    celery_worker, staff_client, multi_genre_set
):
    from classifier.engine.head import load_head
    from classifier.services.active_model import active_engine

    result = import_folder(multi_genre_set, status=Sample.Status.APPROVED)
    assert not result.errors, result.errors
    assert Sample.objects.count() >= 12
    assert any(len(s.genre_names()) >= 2 for s in Sample.objects.prefetch_related("genres"))

    response = staff_client.post(reverse("admin:curation_trainingrun_add"), RUN_FORM)
    run = TrainingRun.objects.get()
    assert response.url == reverse("admin:curation_trainingrun_change", args=[run.pk])
    wait_for(
        lambda: TrainingRun.objects.get(pk=run.pk).finished,
        WAIT_SECONDS,
        "the training run",
        celery_worker,
    )
    run.refresh_from_db()
    assert run.status == "done", run.error
    assert run.progress == 1.0 and run.task_id
    report = run.report
    assert report["calibration"]["method"] == "platt"
    assert report["validation"]["samples"] >= 2
    assert report["artists_on_both_sides"] == []
    assert set(report["validation"]["per_genre"]) == set(report["genres"])

    version = run.model_version
    head, info, _ = load_head(Path(version.head.path))
    assert info.activation == "sigmoid" and info.genres == report["genres"]
    assert all(info.tag_spelling[g] for g in info.genres)
    page = staff_client.get(reverse("admin:curation_trainingrun_change", args=[run.pk]))
    assert 'id="promote"' in page.content.decode()

    staff_client.post(reverse("admin:curation_trainingrun_promote", args=[run.pk]))
    assert ModelVersion.objects.get(is_active=True) == version
    engine = active_engine()
    assert engine.model == version.model and engine.info.activation == "sigmoid"
    # The promotion queued fresh verdicts: the worker judges every analysed sample (those the
    # run trained or validated on; a sample whose genres were too rare was never analysed).
    analysed = Sample.objects.filter(pk__in=report["train_samples"] + report["validation_samples"])
    wait_for(
        lambda: not analysed.exclude(verdict_model=version.model).exists(),
        WAIT_SECONDS,
        "the samples' verdicts by the promoted model",
        celery_worker,
    )
    judged = analysed.first()
    assert judged.verdict_multi_label and set(judged.verdict_probabilities) == set(info.genres)
