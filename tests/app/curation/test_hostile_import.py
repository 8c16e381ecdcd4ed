"""A folder import goes on past a file that fails in a way nobody foresaw."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.curation.models import Sample
from classifier.curation.services import importing
from tests.audiofiles import make_audio_file
from tests.engine.hostile import impossible_wavs

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_an_unexpected_error_on_one_file_is_reported_and_the_import_goes_on(
    tmp_path, monkeypatch, caplog
):
    folder = tmp_path / "set" / "rock"
    folder.mkdir(parents=True)
    for n, name in enumerate(("good", "bad", "good2")):
        make_audio_file(folder, "flac", seconds=0.5, name=name, seed=n)
    real = importing.artist_from_tags

    def artist(path: Path) -> str:
        if path.name == "bad.flac":
            raise KeyError("a tag reader bug")
        return real(path)

    monkeypatch.setattr(importing, "artist_from_tags", artist)

    result = importing.import_folder(tmp_path / "set")

    assert len(result.created) == 2 and not result.duplicates
    assert result.errors == [
        "bad.flac could not be imported: an internal error occurred (KeyError: 'a tag reader bug')"
    ]
    assert sorted(Sample.objects.values_list("original_name", flat=True)) == [
        "good.flac",
        "good2.flac",
    ]
    assert "a tag reader bug" in caplog.text and "Traceback" in caplog.text


def test_wav_headers_without_a_decoder_do_not_stop_an_import(tmp_path):
    folder = tmp_path / "set" / "jazz"
    folder.mkdir(parents=True)
    make_audio_file(folder, "wav", seconds=0.5, name="fine")
    impossible_wavs(folder)
    result = importing.import_folder(tmp_path / "set")
    assert len(result.created) + len(result.errors) == 3
