"""End to end through a real Celery worker: import, review, train, promote, the next track."""

from __future__ import annotations

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse

from classifier.curation.models import ModelVersion, Sample, TrainingRun
from tests.app.curation.conftest import gtzan_clip
from tests.workers import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_SECONDS = 300

RUN_FORM = {
    "epochs": 200,
    "learning_rate": 0.01,
    "weight_decay": 0.001,
    "hidden": 0,
    "feature": "penultimate",
    "validation_fraction": 0.25,
    "seed": 0,
    "notes": "",
}


def upload_track(owner, path):
    from classifier.services import intake
    from classifier.tasks import queue_analyses

    upload = SimpleUploadedFile(path.name, path.read_bytes(), content_type="audio/flac")
    taken = intake.accept_upload(owner, upload)
    queue_analyses(taken.to_analyse)
    return taken.track


def analysed(track):
    track.refresh_from_db()
    return track if track.status in ("done", "failed") else None


def test_training_run_through_a_worker_then_the_worker_uses_the_promoted_version(
    celery_worker, staff_client, staff, gtzan_subset, gtzan_dir, baseline_head
):
    from classifier.curation.services.versions import (
        reanalyse_older_tracks,
        tracks_from_older_versions,
    )
    from classifier.tasks import queue_analyses

    _, baseline_model = baseline_head
    # Import; the verdicts are computed by the worker.
    call_command(
        "import_samples",
        str(gtzan_subset),
        "--verdicts",
        "queue",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert Sample.objects.count() == 12
    wait_for(
        lambda: not Sample.objects.exclude(verdict_model=baseline_model).exists(),
        WAIT_SECONDS,
        "the worker's verdicts on the imported samples",
        celery_worker,
    )

    # Review: approve everything from the changelist.
    staff_client.post(
        reverse("admin:curation_sample_changelist"),
        {
            "action": "approve",
            "index": 0,
            "_selected_action": list(Sample.objects.values_list("pk", flat=True)),
        },
    )
    assert Sample.objects.filter(status="approved").count() == 12

    # Start a run from the admin; the worker claims and trains it.
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
    assert run.task_id and run.progress == 1.0 and run.created_by == staff
    progress = staff_client.get(reverse("admin:curation_trainingrun_progress", args=[run.pk]))
    assert progress.json() == {
        "status": "done",
        "progress": 1.0,
        "message": "done",
        "error": "",
        "finished": True,
    }
    version = run.model_version
    assert version is not None and not version.is_active
    report = staff_client.get(reverse("admin:curation_trainingrun_change", args=[run.pk]))
    page = report.content.decode()
    assert 'id="run-accuracy"' in page and 'id="confusion"' in page and 'id="promote"' in page
    assert baseline_model in page  # the comparison names the active model

    # Before promotion the worker analyses tracks with the baseline head...
    before = upload_track(staff, gtzan_clip(gtzan_dir, "metal", 4))
    wait_for(lambda: analysed(before), WAIT_SECONDS, "the first track", celery_worker)
    assert before.status == "done", before.error
    assert before.model_version == baseline_model

    # ...promote from the report page; the same worker process uses it for the next track.
    staff_client.post(reverse("admin:curation_trainingrun_promote", args=[run.pk]))
    assert ModelVersion.objects.get(is_active=True) == version
    after = upload_track(staff, gtzan_clip(gtzan_dir, "metal", 5))
    wait_for(lambda: analysed(after), WAIT_SECONDS, "the track after the promotion", celery_worker)
    assert after.status == "done", after.error
    assert after.model_version == version.model
    assert after.model_version.endswith(f"+head-{version.version}")
    assert set(after.verdict["probabilities"]) == {"Blues", "Classical", "Metal"}
    assert celery_worker.process.poll() is None  # no restart happened

    # The promotion queued fresh verdicts of the samples with the new model.
    wait_for(
        lambda: not Sample.objects.exclude(verdict_model=version.model).exists(),
        WAIT_SECONDS,
        "the samples' verdicts by the promoted model",
        celery_worker,
    )

    # The track made by the older version is found, and re-analysed with the active one.
    assert list(tracks_from_older_versions(staff)) == [before]
    queued = reanalyse_older_tracks(staff)
    assert queued == [before.pk]
    queue_analyses(queued)
    wait_for(
        lambda: analysed(before) and before.model_version == version.model,
        WAIT_SECONDS,
        "the re-analysis",
        celery_worker,
    )
    assert not tracks_from_older_versions(staff).exists()
