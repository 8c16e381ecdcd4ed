"""Importing labelled folders: genres resolved, artists found, the same audio never twice."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from mutagen.flac import FLAC

from classifier.curation.models import Genre, Sample
from classifier.curation.services import CurationError
from classifier.curation.services.importing import import_folder, import_zip
from tests.audiofiles import make_audio_file, tone, write_audio

pytestmark = pytest.mark.django_db


def labelled_folder(root: Path, layout: dict[str, int], seed: int = 0) -> Path:
    """root/<genre>/<n>.flac, real FLAC files with distinct content."""
    for g, (genre, count) in enumerate(layout.items()):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            freqs = (110.0 * (g + 2), 50.0 * (n + 3))
            write_audio(
                root / genre / f"{genre}.{n:05d}.flac",
                tone(1.0, 22_050, freqs, seed=seed + 10 * g + n),
                22_050,
                "flac",
            )
    return root


def test_folder_import_creates_proposed_samples_with_genre_and_hash(tmp_path):
    root = labelled_folder(tmp_path / "set", {"blues": 2, "metal": 3})
    result = import_folder(root)
    assert len(result.created) == 5 and not result.duplicates and not result.errors
    samples = Sample.objects.order_by("original_name")
    assert [s.genre_names() for s in samples] == [["Blues"]] * 2 + [["Metal"]] * 3
    assert {s.status for s in samples} == {Sample.Status.PROPOSED}
    assert {s.source for s in samples} == {Sample.Source.IMPORT}
    first = samples[0]
    assert first.original_name == "blues.00000.flac"
    assert first.source_ref == "set/blues/blues.00000.flac"
    # The stored copy is byte-identical to the imported file.
    assert Path(first.audio.path).read_bytes() == (root / "blues" / "blues.00000.flac").read_bytes()
    assert len(first.content_hash) == 64


def test_reimport_skips_audio_already_there_even_renamed(tmp_path):
    root = labelled_folder(tmp_path / "set", {"blues": 2, "rock": 1})
    assert len(import_folder(root).created) == 3
    # The same audio again, under another file and folder name, plus one new file.
    again = tmp_path / "again"
    (again / "Rock").mkdir(parents=True)
    shutil.copy(root / "rock" / "rock.00000.flac", again / "Rock" / "renamed.flac")
    make_audio_file(again / "Rock", "mp3", 1.0, 22_050)
    result = import_folder(again)
    assert result.duplicates == ["Rock/renamed.flac"]
    assert len(result.created) == 1
    assert Sample.objects.count() == 4


def test_folder_names_resolve_through_tag_spelling_and_aliases(tmp_path):
    layout = {"Hip-Hop": 1, "rap": 1, "hiphop": 1, "Afro Beat": 1, "Zydeco Punk": 1}
    result = import_folder(labelled_folder(tmp_path / "set", layout))
    hiphop = Genre.objects.get(name="Hip-Hop")
    assert hiphop.samples.count() == 3  # "Hip-Hop", the alias "rap" and the old name "hiphop"
    assert Genre.objects.get(name="World").samples.count() == 1  # the taxonomy's alias
    assert result.new_genres == ["Zydeco Punk"]
    new = Genre.objects.get(name="Zydeco Punk")
    assert new.tag_spelling == "Zydeco Punk"
    # Staff can now add an alias and later imports use it.
    new.aliases = "zydecopunk, zp"
    new.save()
    assert Genre.objects.resolve("ZP") == new


def test_an_ambiguous_folder_name_is_reported_not_made_a_genre(tmp_path):
    # AllMusic's "Pop/Rock" says Pop or Rock without saying which.
    result = import_folder(labelled_folder(tmp_path / "set", {"Pop-Rock": 1, "Jazz": 1}))
    assert len(result.created) == 1
    assert result.errors == [
        "Pop-Rock.00000.flac: the genre 'Pop-Rock' is ambiguous (Pop or Rock): name one of them"
    ]
    assert not Genre.objects.filter(name__icontains="pop-rock").exists()


def test_artist_from_nested_folder_or_from_tags(tmp_path):
    root = tmp_path / "set"
    (root / "jazz" / "Miles Davis").mkdir(parents=True)
    write_audio(root / "jazz" / "Miles Davis" / "a.flac", tone(1.0, seed=1), 22_050, "flac")
    write_audio(root / "jazz" / "b.flac", tone(1.0, seed=2), 22_050, "flac")
    tagged = FLAC(root / "jazz" / "b.flac")
    tagged["artist"] = "Nina Simone"
    tagged.save()
    import_folder(root)
    artists = dict(Sample.objects.values_list("original_name", "artist"))
    assert artists == {"a.flac": "Miles Davis", "b.flac": "Nina Simone"}


def test_empty_or_missing_folder_is_refused(tmp_path):
    with pytest.raises(CurationError, match="not a folder"):
        import_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "rock").mkdir(parents=True)
    with pytest.raises(CurationError, match="no audio files"):
        import_folder(tmp_path / "empty")


def test_zip_import_steps_into_wrapper_folder_and_ignores_paths_outside(tmp_path):
    root = labelled_folder(tmp_path / "dataset", {"country": 2, "disco": 1})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in sorted(root.rglob("*.flac")):
            zf.write(f, f"dataset/{f.relative_to(root).as_posix()}")
        zf.writestr("../evil/country/x.flac", b"not audio")
        zf.writestr("dataset/country/readme.txt", b"not audio either")
    buffer.seek(0)
    result = import_zip(buffer, "dataset.zip")
    assert len(result.created) == 3
    assert sorted(Sample.objects.values_list("genres__name", flat=True)) == [
        "Country",
        "Country",
        "Disco",
    ]
    assert not (tmp_path / "evil").exists()
    assert Sample.objects.filter(source_ref__startswith="dataset.zip/country/").count() == 2


def test_not_a_zip_is_refused():
    with pytest.raises(CurationError, match="not a zip"):
        import_zip(io.BytesIO(b"plain bytes"), "x.zip")


def test_import_samples_command_imports_once_then_skips(tmp_path):
    root = labelled_folder(tmp_path / "set", {"pop": 2, "reggae": 2})
    out = io.StringIO()
    call_command(
        "import_samples",
        str(root),
        "--verdicts",
        "no",
        "--approve",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "4 imported; 0 already there" in out.getvalue()
    assert Sample.objects.filter(status=Sample.Status.APPROVED).count() == 4
    out = io.StringIO()
    call_command("import_samples", str(root), "--verdicts", "no", stdout=out, stderr=io.StringIO())
    assert "0 imported; 4 already there" in out.getvalue()
    assert Sample.objects.count() == 4


def test_import_samples_command_reports_a_bad_folder(tmp_path):
    with pytest.raises(CommandError, match="not a folder"):
        call_command("import_samples", str(tmp_path / "missing"), "--verdicts", "no")


def test_command_computes_verdicts_of_the_active_model(gtzan_subset, baseline_head):
    _, baseline_model = baseline_head
    out = io.StringIO()
    call_command("import_samples", str(gtzan_subset), stdout=out, stderr=io.StringIO())
    assert "12 imported" in out.getvalue()
    assert "verdicts of the active model on 12 new samples" in out.getvalue()
    samples = Sample.objects.prefetch_related("genres")
    assert {s.verdict_model for s in samples} == {baseline_model}
    for sample in samples:
        probabilities = sample.verdict_probabilities
        assert set(probabilities) == {"Blues", "Classical"}  # the baseline head's genres
        assert sample.verdict_genre == max(probabilities, key=probabilities.get)
        assert sample.uncertainty == pytest.approx(1 - max(probabilities.values()), abs=1e-3)
        (label,) = sample.genre_names()
        assert sample.disagreement == pytest.approx(1 - probabilities.get(label, 0.0), abs=1e-3)
    # The baseline never heard of metal: every metal sample fully disagrees.
    metal = [s for s in samples if s.genre_names() == ["Metal"]]
    assert metal and all(s.disagreement == pytest.approx(1.0) for s in metal)
    # Classical vs blues it tells apart on clips it never saw.
    classical = [s for s in samples if s.genre_names() == ["Classical"]]
    assert sum(s.verdict_genre == "Classical" for s in classical) >= 3


def make_track(owner, tmp_path: Path, name: str, primary_genre: str, seed: int):
    """A user's analysed upload (the web app's Track), with a real audio file."""
    from django.core.files import File

    from classifier.engine.files import sha256_of
    from classifier.models import Track

    path = write_audio(tmp_path / name, tone(1.0, seed=seed), 22_050, "flac")
    track = Track(
        owner=owner,
        original_name=name,
        sha256=sha256_of(path),
        size=path.stat().st_size,
        status="done",
        artist="Uploader Band",
        primary_genre=primary_genre,
        model_version="musicnn-msd-x+head-y",
    )
    with path.open("rb") as handle:
        track.file.save(name, File(handle), save=True)
    return track


def test_a_users_upload_becomes_a_proposed_sample(django_user_model, tmp_path):
    from classifier.curation.services.importing import sample_from_track

    owner = django_user_model.objects.create_user("uploader", password="pw-12345")
    track = make_track(owner, tmp_path, "song.flac", "jazz", seed=3)
    sample = sample_from_track(track)
    assert sample.genre_names() == ["Jazz"] and sample.status == "proposed"
    assert sample.source == Sample.Source.UPLOAD and sample.source_ref == f"track:{track.pk}"
    assert sample.artist == "Uploader Band" and sample.original_name == "song.flac"
    assert Path(sample.audio.path).read_bytes() == Path(track.file.path).read_bytes()
    assert sample_from_track(track) is None  # the same audio only once
    uncertain = make_track(owner, tmp_path, "unsure.flac", "", seed=4)
    assert sample_from_track(uncertain) is None
    assert sample_from_track(uncertain, Genre.objects.get(name="Rock")).genre_names() == ["Rock"]


def test_track_admin_action_adds_uploads_to_the_dataset(admin_client, admin_user, tmp_path, rf):
    from django.contrib import admin
    from django.contrib.messages.storage.fallback import FallbackStorage

    from classifier.curation.track_actions import add_to_dataset
    from classifier.models import Track

    make_track(admin_user, tmp_path, "a.flac", "metal", seed=5)
    make_track(admin_user, tmp_path, "b.flac", "", seed=6)
    request = rf.post("/")
    request.user = admin_user
    request.session = admin_client.session
    request._messages = FallbackStorage(request)
    add_to_dataset(admin.ModelAdmin(Track, admin.site), request, Track.objects.all())
    assert list(Sample.objects.values_list("original_name", "genres__name")) == [
        ("a.flac", "Metal")
    ]
    assert "1 tracks added to the dataset" in str(list(request._messages)[0])


def test_deleting_a_sample_deletes_its_stored_audio(tmp_path):
    import_folder(labelled_folder(tmp_path / "set", {"rock": 1}))
    sample = Sample.objects.get()
    stored = Path(sample.audio.path)
    assert stored.exists()
    sample.delete()
    assert not stored.exists()
