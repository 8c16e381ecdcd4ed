"""Training runs in-process, model versions, promotion and what the engine then uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.db import IntegrityError, transaction

from classifier.curation.models import Genre, ModelVersion, Sample, TrainingRun
from classifier.curation.services.embeddings import cache_path
from classifier.curation.services.importing import import_folder
from classifier.curation.services.training import claim, run_training
from classifier.curation.services.versions import (
    active_model_string,
    promote,
    roll_back,
    tracks_from_older_versions,
)
from classifier.engine.head import load_head
from classifier.services.active_model import active_engine, head_path, promoted_head_path

pytestmark = pytest.mark.django_db


@pytest.fixture
def approved_subset(gtzan_subset, baseline_head) -> list[Sample]:
    import_folder(gtzan_subset, status=Sample.Status.APPROVED)
    return list(Sample.objects.prefetch_related("genres").order_by("pk"))


def trained(run: TrainingRun) -> TrainingRun:
    done = run_training(run.pk)
    assert done is not None
    assert done.status == TrainingRun.Status.DONE, done.error
    return done


def test_run_trains_reports_and_makes_a_version(approved_subset, baseline_head):
    run = trained(TrainingRun.objects.create(epochs=150))
    run.refresh_from_db()
    assert run.progress == 1.0 and run.finished_at is not None
    report = run.report
    assert report["genres"] == ["Blues", "Classical", "Metal"]
    # 4 clips per genre, one held out per genre as a contiguous block (no artist known).
    assert report["split"]["validation"] == {"Blues": 1, "Classical": 1, "Metal": 1}
    assert report["split"]["train"] == {"Blues": 3, "Classical": 3, "Metal": 3}
    # Calibrated on artist-disjoint folds of the training side (here: numbering blocks).
    assert report["calibration"]["method"] == "platt" and report["calibration"]["folds"] >= 2
    validation = report["validation"]
    assert set(validation["per_genre"]) == {"Blues", "Classical", "Metal"}
    for metrics in validation["per_genre"].values():
        assert set(metrics) >= {"precision", "recall", "f1", "support"}
    assert np.array(validation["confusion"]).sum() == 3
    assert validation["accuracy"] == pytest.approx(np.trace(validation["confusion"]) / 3)
    assert 0.0 <= validation["label_ece"] <= 1.0 and 0.0 <= validation["top_label_ece"] <= 1.0
    # The comparison ran the active (baseline) head on the same three samples.
    comparison = report["comparison"]
    assert comparison["model"] == baseline_head[1]
    assert comparison["samples"] == 3
    assert comparison["unknown_genres"] == ["Metal"]
    assert comparison["per_genre"]["Metal"]["recall"] == 0.0  # it cannot say metal
    assert (
        sum(
            comparison[k]
            for k in ("both_right", "only_new_right", "only_active_right", "both_wrong")
        )
        == 3
    )
    # The confusion matrix is a PNG.
    assert Path(run.confusion_png.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The version's head file holds the run's genres and the taxonomy's tag spellings.
    version = run.model_version
    head, info, head_version = load_head(Path(version.head.path))
    assert head_version == version.version and version.model.endswith(f"+head-{head_version}")
    assert info.genres == ["Blues", "Classical", "Metal"]
    assert info.tag_spelling == {"Blues": "Blues", "Classical": "Classical", "Metal": "Metal"}
    # The same kind of head as the default: one calibrated sigmoid per genre.
    assert info.activation == "sigmoid" and head.multi_label
    assert not np.allclose(head.scale, 1.0) or not np.allclose(head.bias, 0.0)
    assert version.accuracy == validation["accuracy"]
    assert not version.is_active


def test_retrain_reads_cached_embeddings_and_never_the_audio(approved_subset):
    trained(TrainingRun.objects.create(epochs=50))
    for sample in approved_subset:
        assert cache_path(sample.content_hash, "penultimate").exists()
        # Without its audio, a sample can only be trained on from the cache.
        Path(sample.audio.path).rename(Path(sample.audio.path).with_suffix(".gone"))
    try:
        second = trained(TrainingRun.objects.create(epochs=50, seed=1))
        assert second.report["skipped_samples"] == []
        assert sum(second.report["split"]["train"].values()) == 9
    finally:
        for sample in approved_subset:
            Path(sample.audio.path).with_suffix(".gone").rename(sample.audio.path)


def test_artists_stay_on_one_side(approved_subset):
    # Two artists per genre, two clips each: the held-out clips are one artist's pair.
    for sample in approved_subset:
        number = int(sample.original_name.split(".")[1])
        sample.artist = f"{sample.genre_names()[0]}-artist-{number // 2}"
        sample.save()
    run = trained(TrainingRun.objects.create(epochs=50, validation_fraction=0.5))
    held = set(run.report["validation_samples"])
    by_artist: dict[str, set[bool]] = {}
    for sample in approved_subset:
        by_artist.setdefault(sample.artist, set()).add(sample.pk in held)
    assert all(len(sides) == 1 for sides in by_artist.values())
    assert run.report["split"]["validation"] == {"Blues": 2, "Classical": 2, "Metal": 2}
    assert run.report["artists_on_both_sides"] == []


def test_only_approved_samples_train_and_small_genres_are_dropped(approved_subset):
    metal = [s for s in approved_subset if s.genre_names() == ["Metal"]]
    Sample.objects.filter(pk__in=[s.pk for s in metal[1:]]).update(status="rejected")
    run = trained(TrainingRun.objects.create(epochs=50))
    assert run.report["genres"] == ["Blues", "Classical"]
    assert run.report["dropped_genres"] == {"Metal": 1}


def test_pinned_test_samples_are_held_out_of_training(approved_subset):
    pinned = [s for s in approved_subset if s.original_name.endswith("00003.flac")]
    Sample.objects.filter(pk__in=[s.pk for s in pinned]).update(split="test")
    run = trained(TrainingRun.objects.create(epochs=50))
    assert run.report["split"]["test"] == {"Blues": 1, "Classical": 1, "Metal": 1}
    assert not set(run.report["validation_samples"]) & {s.pk for s in pinned}
    assert run.report["test"]["genres"] == ["Blues", "Classical", "Metal"]
    assert run.report["test"]["samples"] == 3


def test_subgenres_roll_up_into_their_parent(approved_subset):
    doom = Genre.objects.create(
        name="Doom", tag_spelling="Doom Metal", parent=Genre.objects.get(name="Metal")
    )
    metal = [s for s in approved_subset if s.genre_names() == ["Metal"]]
    for sample in metal[:2]:
        sample.genres.set([doom])
    flat = trained(TrainingRun.objects.create(epochs=30))
    # A style trains beside its parent, which it implies: all four clips are Metal.
    assert "Doom" in flat.report["genres"]
    assert sum(flat.report["split"][s].get("Metal", 0) for s in ("train", "validation")) == 4
    head, info, _ = load_head(Path(flat.model_version.head.path))
    assert info.parents == {"Doom": "Metal"}
    rolled = trained(TrainingRun.objects.create(epochs=30, roll_up_subgenres=True))
    assert rolled.report["genres"] == ["Blues", "Classical", "Metal"]
    assert sum(rolled.report["split"][s].get("Metal", 0) for s in ("train", "validation")) == 4


def test_a_run_without_two_trainable_genres_fails_with_a_reason(gtzan_subset):
    import_folder(gtzan_subset)  # proposed, not approved
    Sample.objects.filter(genres__name="Blues").update(status="approved")
    run = run_training(TrainingRun.objects.create().pk)
    assert run.status == TrainingRun.Status.FAILED
    assert "at least two genres" in run.error
    assert run.model_version is None


def test_a_run_is_claimed_once(approved_subset):
    run = TrainingRun.objects.create(epochs=10)
    assert claim(run.pk)
    assert not claim(run.pk)  # a second delivery of the task finds it running
    assert run_training(run.pk) is None
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.RUNNING


def test_promotion_switches_the_engine_and_roll_back_restores(approved_subset, baseline_head):
    baseline_path, baseline_model = baseline_head
    assert promoted_head_path() is None
    assert head_path() == baseline_path
    assert active_model_string() == baseline_model

    first = trained(TrainingRun.objects.create(epochs=40)).model_version
    second = trained(TrainingRun.objects.create(epochs=40, seed=5)).model_version
    assert first.version != second.version

    promote(first)
    assert promoted_head_path() == Path(first.head.path)
    assert active_engine().model == first.model  # the engine of the promoted head
    assert active_engine().info.tag_spelling["Metal"] == "Metal"
    promote(second)
    assert ModelVersion.objects.get(is_active=True) == second
    assert active_engine().model == second.model
    assert active_model_string() == second.model

    assert roll_back() == first
    assert active_engine().model == first.model
    assert roll_back() is None  # nothing was promoted before the first: the bundled head
    assert promoted_head_path() is None
    assert active_engine().model == baseline_model


def test_only_one_version_can_be_active(approved_subset):
    first = trained(TrainingRun.objects.create(epochs=20)).model_version
    second = trained(TrainingRun.objects.create(epochs=20, seed=2)).model_version
    promote(first)
    second.is_active = True
    with pytest.raises(IntegrityError), transaction.atomic():
        second.save()


def test_a_promoted_head_whose_file_vanished_falls_back(approved_subset, baseline_head):
    version = trained(TrainingRun.objects.create(epochs=20)).model_version
    promote(version)
    Path(version.head.path).rename(version.head.path + ".moved")
    try:
        assert promoted_head_path() is None
        assert head_path() == baseline_head[0]
    finally:
        Path(version.head.path + ".moved").rename(version.head.path)


def test_tracks_from_older_versions(django_user_model, approved_subset, baseline_head):
    from classifier.models import Track

    alice = django_user_model.objects.create_user("alice", password="pw-12345")
    bob = django_user_model.objects.create_user("bob", password="pw-12345")
    version = trained(TrainingRun.objects.create(epochs=20)).model_version

    def track(owner, n: int, model: str) -> Track:
        return Track.objects.create(
            owner=owner,
            original_name=f"{n}.flac",
            sha256=f"{n:064d}",
            size=1,
            status="done",
            model_version=model,
        )

    old = track(alice, 1, baseline_head[1])
    track(alice, 2, "")  # never analysed: nothing to redo
    bobs_old = track(bob, 3, baseline_head[1])
    assert set(tracks_from_older_versions(None)) == set()  # the baseline is still active
    promote(version)
    current = track(alice, 4, version.model)
    assert set(tracks_from_older_versions(None)) == {old, bobs_old}
    assert set(tracks_from_older_versions(alice)) == {old}
    assert current not in tracks_from_older_versions(alice)


def test_comparison_says_when_the_active_model_saw_the_validation_samples(approved_subset):
    first = trained(TrainingRun.objects.create(epochs=20))
    assert first.report["comparison"]["trained_on_these"] is None  # the baseline: not recorded
    promote(first.model_version)
    # Half of each genre held out now: at least one per genre was in the first run's training.
    second = trained(TrainingRun.objects.create(epochs=20, validation_fraction=0.5))
    seen = set(first.report["train_samples"]) & set(second.report["validation_samples"])
    assert len(seen) >= 3
    assert second.report["comparison"]["trained_on_these"] == len(seen)
    assert second.report["comparison"]["model"] == first.model_version.model


def test_versions_admin_promotes_rolls_back_and_logs(staff_client, staff, approved_subset):
    from django.urls import reverse

    from classifier.curation.models import Promotion

    first = trained(TrainingRun.objects.create(epochs=20)).model_version
    second_run = trained(TrainingRun.objects.create(epochs=20, seed=4))
    second = second_run.model_version
    versions = reverse("admin:curation_modelversion_changelist")
    staff_client.post(
        versions, {"action": "promote_selected", "index": 0, "_selected_action": [first.pk]}
    )
    assert ModelVersion.objects.get(is_active=True) == first
    assert first.model in staff_client.get(versions).content.decode()
    staff_client.post(reverse("admin:curation_trainingrun_promote", args=[second_run.pk]))
    assert ModelVersion.objects.get(is_active=True) == second
    page = staff_client.post(reverse("admin:curation_modelversion_rollback"), follow=True)
    assert f"Rolled back: {first.model} is now the active model." in page.content.decode()
    assert [str(p) for p in Promotion.objects.order_by("id")] == [
        f"promoted head-{first.version}",
        f"promoted head-{second.version}",
        f"rolled back to head-{first.version}",
    ]
    assert {p.by for p in Promotion.objects.all()} == {staff}
    # A version whose head file is gone is refused, and the active one stays.
    Path(second.head.path).rename(second.head.path + ".moved")
    try:
        page = staff_client.post(
            reverse("admin:curation_trainingrun_promote", args=[second_run.pk]), follow=True
        )
        assert "Not promoted: the head file" in page.content.decode()
        assert ModelVersion.objects.get(is_active=True).pk == first.pk
    finally:
        Path(second.head.path + ".moved").rename(second.head.path)


def test_run_pages_follow_progress_and_show_the_report(staff_client, approved_subset):
    from django.urls import reverse

    response = staff_client.post(
        reverse("admin:curation_trainingrun_add"),
        {
            "epochs": 30,
            "weight_decay": 0.01,
            "hidden": 0,
            "feature": "penultimate",
            "validation_fraction": 0.25,
            "seed": 0,
            "notes": "",
        },
    )
    run = TrainingRun.objects.get()
    page = staff_client.get(response.url).content.decode()
    assert run.status == "pending" and 'id="run-progress"' in page and "poll()" in page
    progress = reverse("admin:curation_trainingrun_progress", args=[run.pk])
    assert staff_client.get(progress).json()["finished"] is False
    trained(run)  # what the worker does (the worker itself: test_worker.py)
    page = staff_client.get(response.url).content.decode()
    assert "poll()" not in page and 'id="per-genre"' in page and 'id="promote"' in page
    png = staff_client.get(reverse("admin:curation_trainingrun_confusion", args=[run.pk]))
    assert png["Content-Type"] == "image/png"
    bad = staff_client.post(
        reverse("admin:curation_trainingrun_add"),
        {
            "epochs": 0,
            "weight_decay": 0.01,
            "hidden": 0,
            "feature": "penultimate",
            "validation_fraction": 0.9,
            "seed": 0,
        },
    )
    assert bad.status_code == 200 and TrainingRun.objects.count() == 1
    assert "between 1 and 5000" in bad.content.decode()
    assert "between 0 and 0.5" in bad.content.decode()
