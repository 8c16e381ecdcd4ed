"""Importing a folder described by a labels.csv: several genres per file, every problem named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from classifier.curation.models import Genre, Sample
from classifier.curation.services import CurationError
from classifier.curation.services.importing import import_folder, import_zip
from tests.audiofiles import tone, write_audio

pytestmark = pytest.mark.django_db


def dataset(root: Path, csv_text: str, files: list[str]) -> Path:
    root.mkdir(parents=True)
    for n, name in enumerate(files):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_audio(root / name, tone(0.4, 22_050, (100.0 + 30 * n,), seed=n), 22_050, "flac")
    (root / "labels.csv").write_text(csv_text, encoding="utf-8")
    return root


def genres_of(name: str) -> list[str]:
    return Sample.objects.get(original_name=name).genre_names()


def test_several_genres_per_file_with_any_separator_and_the_artist(tmp_path):
    root = dataset(
        tmp_path / "set",
        "file,genres,artist\n"
        "a.flac,Hip Hop;R&B,Some MC\n"
        'b.flac,"Electronic, Deep House",DJ B\n'
        "sub/c.flac,Jazz|Blues|(0),\n",
        ["a.flac", "b.flac", "sub/c.flac"],
    )
    result = import_folder(root)
    assert len(result.created) == 3 and not result.errors and not result.warnings
    assert genres_of("a.flac") == ["Hip-Hop", "R&B/Soul"]
    assert genres_of("b.flac") == ["Electronic", "House"]
    assert genres_of("c.flac") == ["Blues", "Jazz"]  # "(0)" is ID3v1's Blues
    assert Sample.objects.get(original_name="a.flac").artist == "Some MC"
    assert Sample.objects.get(original_name="c.flac").source_ref == "set/sub/c.flac"


def test_unknown_and_ambiguous_spellings_are_reported_per_row_and_kept_in_notes(tmp_path):
    root = dataset(
        tmp_path / "set",
        "file,genres\na.flac,Rock;Zydeco Punk\nb.flac,Pop/Rock\nc.flac,Nothing Known\nd.flac,\n",
        ["a.flac", "b.flac", "c.flac", "d.flac"],
    )
    result = import_folder(root)
    assert len(result.created) == 1
    assert genres_of("a.flac") == ["Rock"]
    assert "labels.csv: Rock; Zydeco Punk" in Sample.objects.get(original_name="a.flac").notes
    assert result.warnings == [
        "labels.csv line 2 (a.flac): imported without 'Zydeco Punk' is not a known genre"
    ]
    assert result.errors == [
        "labels.csv line 3 (b.flac): no known genre ('Pop/Rock' is ambiguous (Pop or Rock))",
        "labels.csv line 4 (c.flac): no known genre ('Nothing Known' is not a known genre)",
        "labels.csv line 5 (d.flac): no known genre (the genres column is empty)",
    ]
    assert not Genre.objects.filter(name__in=["Zydeco Punk", "Nothing Known"]).exists()


def test_missing_outside_and_unlisted_files_are_reported(tmp_path):
    root = dataset(
        tmp_path / "set",
        "file,genres\nmissing.flac,Rock\n../escape.flac,Rock\nnotes.txt,Rock\nok.flac,Rock\n",
        ["ok.flac", "stray.flac"],
    )
    (tmp_path / "escape.flac").write_bytes((root / "ok.flac").read_bytes())
    result = import_folder(root)
    assert len(result.created) == 1
    assert result.errors == [
        "labels.csv line 2 (missing.flac): no such file",
        "labels.csv line 3 (../escape.flac): the file must be inside the imported folder",
        "labels.csv line 4 (notes.txt): not an audio file name",
        "stray.flac: not in labels.csv, not imported",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,genres\na.flac,Rock\n", "needs a column 'file'"),
        ("file,style\na.flac,Rock\n", "needs a column 'genres'"),
        ("file,genres\n", "names no files"),
    ],
)
def test_an_unusable_labels_csv_is_refused_with_the_reason(tmp_path, text, message):
    root = dataset(tmp_path / "set", text, ["a.flac"])
    with pytest.raises(CurationError, match=message):
        import_folder(root)


def test_binary_junk_as_labels_csv_is_refused_not_a_crash(tmp_path):
    root = dataset(tmp_path / "set", "", ["a.flac"])
    (root / "labels.csv").write_bytes(b"\xff\xfe\x00garbage\x00\x81")
    with pytest.raises(CurationError, match="not UTF-8"):
        import_folder(root)


def test_a_zip_with_labels_csv_inside_a_wrapper_folder(tmp_path):
    root = dataset(tmp_path / "set", "file,genres\na.flac,Blues;Rock\n", ["a.flac"])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.write(root / "a.flac", "dataset/a.flac")
        zf.write(root / "labels.csv", "dataset/labels.csv")
    buffer.seek(0)
    result = import_zip(buffer, "dataset.zip")
    assert len(result.created) == 1 and not result.errors
    assert genres_of("a.flac") == ["Blues", "Rock"]
