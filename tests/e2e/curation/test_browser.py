"""A curator walks the admin in Chromium: import, relabel one sample, train, read, promote."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from classifier.curation.models import ModelVersion, Sample, TrainingRun
from tests.app.curation.conftest import SUBSET_CLIPS, SUBSET_GENRES, gtzan_clip

pytestmark = pytest.mark.django_db(transaction=True)

MISFILED = "metal.00003.flac"  # put in the blues folder of the zip: staff fix it in review


@pytest.fixture
def dataset_zip(gtzan_dir: Path, tmp_path: Path) -> Path:
    """The GTZAN subset as a zip, one metal clip misfiled under blues."""
    archive = tmp_path / "dataset.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for genre in SUBSET_GENRES:
            for n in SUBSET_CLIPS:
                clip = gtzan_clip(gtzan_dir, genre, n)
                folder = "blues" if clip.name == MISFILED else genre
                zf.write(clip, f"dataset/{folder}/{clip.name}")
    return archive


def test_curator_imports_relabels_trains_and_promotes(
    page, live_server, celery_worker, staff, dataset_zip, baseline_head
):
    admin = f"{live_server.url}/admin"
    page.goto(f"{admin}/login/")
    page.fill("#id_username", "curator")
    page.fill("#id_password", "pw-12345")
    page.click("input[type=submit]")

    # Import the zip from the sample list.
    page.goto(f"{admin}/curation/sample/")
    page.click("#import-link")
    page.set_input_files("input[name=archive]", str(dataset_zip))
    page.click("input[name=import]")
    page.wait_for_selector("text=Import: 12 imported; 0 already there")
    assert page.locator("#genre-counts").is_visible()
    assert Sample.objects.get(original_name=MISFILED).genre_names() == ["Blues"]

    # Relabel the misfiled clip to metal.
    page.locator("#result_list tr", has_text=MISFILED).locator("input.action-select").check()
    page.select_option("select[name=action]", "relabel")
    page.click("button[name=index]")
    page.wait_for_selector("#relabel-form")
    page.select_option("#id_genres", label="Metal")
    page.click("input[name=apply]")
    page.wait_for_selector("text=1 sample relabelled Metal.")
    misfiled = Sample.objects.get(original_name=MISFILED)
    assert misfiled.genre_names() == ["Metal"] and misfiled.status == "approved"

    # Approve the rest.
    page.check("#action-toggle")
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    page.wait_for_selector("text=12 samples now approved.")

    # Start a run with the default parameters; the report page follows it to the end.
    page.goto(f"{admin}/curation/trainingrun/add/")
    page.fill("#id_epochs", "200")
    page.click("input[name=_save]")
    page.wait_for_selector("#run-progress")
    page.wait_for_selector("#run-accuracy", timeout=300_000)
    run = TrainingRun.objects.get()
    assert run.status == "done"
    assert page.locator("#run-status-text").inner_text() == "done"
    assert page.locator("#per-genre tbody tr").count() == 3
    assert page.eval_on_selector("#confusion", "img => img.complete && img.naturalWidth > 0")
    assert baseline_head[1] in page.locator("#run-metrics").inner_text()
    assert page.locator("#comparison").is_visible()

    # Promote it.
    page.click("#promote")
    page.wait_for_selector("#run-active")
    assert ModelVersion.objects.get(is_active=True) == run.model_version
    page.goto(f"{admin}/curation/modelversion/")
    assert run.model_version.model in page.locator("#active-model").inner_text()
