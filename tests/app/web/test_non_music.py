"""Non-music uploaded to the library comes out uncertain, says why, and gets no genre tag."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from classifier.engine.filetags import read_tags
from classifier.engine.runner import NOVEL_WARNING
from classifier.models import Track
from classifier.services import intake, processing

pytestmark = pytest.mark.django_db


def test_white_noise_is_uncertain_with_its_reason(
    settings, user, alice, tmp_path, django_capture_on_commit_callbacks
):
    settings.GENREWEB_NOVELTY_CHECK = True  # the product's default (tests/app/conftest.py)
    path = tmp_path / "hiss.wav"
    sf.write(path, (np.random.default_rng(3).standard_normal(16_000 * 10) * 0.2), 16_000)
    with django_capture_on_commit_callbacks(execute=False):
        accepted = intake.accept_upload(user, SimpleUploadedFile(path.name, path.read_bytes()))
    assert processing.process_track(accepted.track.pk) == "done"
    track = Track.objects.get(pk=accepted.track.pk)
    assert track.uncertain and track.primary_genre == "" and track.genre_index == ""
    assert track.verdict["novelty"] > 1.0 and NOVEL_WARNING in track.warnings
    assert track.genres_after == [] and read_tags(track.file.path).genres == []
    page = alice.get(reverse("track-detail", args=[track.pk])).content.decode()
    assert "does not sound like the music the model learned from" in page
