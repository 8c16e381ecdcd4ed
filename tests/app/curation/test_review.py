"""The review admin: counts and warnings, the player, sorting worst first, bulk actions."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from classifier.curation.models import Genre, Sample
from classifier.curation.services.counts import GenreCount, balance_warnings, genre_counts
from classifier.curation.services.importing import import_folder
from tests.audiofiles import tone, write_audio

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:curation_sample_changelist"


def small_set(root: Path, layout: dict[str, int]) -> Path:
    for g, (genre, count) in enumerate(layout.items()):
        (root / genre).mkdir(parents=True, exist_ok=True)
        for n in range(count):
            write_audio(
                root / genre / f"{genre}.{n:05d}.flac",
                tone(0.5, 22_050, (100.0 + 40 * g, 60.0 * (n + 2)), seed=g * 50 + n),
                22_050,
                "flac",
            )
    return root


def act(client, action: str, samples, **extra):
    return client.post(
        reverse(CHANGELIST),
        {"action": action, "index": 0, ACTION_CHECKBOX_NAME: [s.pk for s in samples], **extra},
        follow=True,
    )


def test_counts_and_balance_warnings():
    counts = [GenreCount("rock", 12, 0, 1), GenreCount("jazz", 3, 2, 0), GenreCount("pop", 0, 0, 0)]
    warnings = balance_warnings(counts)
    assert "jazz: only 3 approved samples (fewer than 5: too small to train)" in warnings
    assert any(w.startswith("unbalanced: rock has 12") for w in warnings)
    assert not any("pop" in w for w in warnings)  # no samples at all: not in the dataset
    assert balance_warnings([GenreCount("rock", 6, 0, 0), GenreCount("jazz", 5, 0, 0)]) == []
    assert balance_warnings([GenreCount("rock", 6, 0, 0)]) == [
        "a training run needs approved samples of at least two genres"
    ]


def test_genre_counts_count_by_status(tmp_path):
    import_folder(small_set(tmp_path, {"rock": 3, "jazz": 2}))
    Sample.objects.filter(genres__name="Rock").update(status="approved")
    Sample.objects.filter(original_name="jazz.00000.flac").update(status="rejected")
    counts = {c.genre: c for c in genre_counts()}
    assert (counts["Rock"].approved, counts["Rock"].proposed) == (3, 0)
    assert (counts["Jazz"].approved, counts["Jazz"].proposed, counts["Jazz"].rejected) == (0, 1, 1)
    assert counts["Blues"].total == 0


def test_changelist_shows_counts_warnings_and_players(staff_client, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 2, "jazz": 1}), status="approved")
    page = staff_client.get(reverse(CHANGELIST)).content.decode()
    assert 'id="genre-counts"' in page
    assert "Rock: only 2 approved samples" in page
    players = re.findall(r'<audio controls preload="none" src="([^"]+)"', page)
    assert len(players) == 3
    sample = Sample.objects.get(original_name="jazz.00000.flac")
    audio = staff_client.get(reverse("admin:curation_sample_audio", args=[sample.pk]))
    assert audio.status_code == 200
    assert b"".join(audio.streaming_content) == Path(sample.audio.path).read_bytes()


def test_audio_is_for_staff_only(client, django_user_model, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 1}))
    sample = Sample.objects.get()
    url = reverse("admin:curation_sample_audio", args=[sample.pk])
    assert client.get(url).status_code == 302  # to the admin login
    client.force_login(django_user_model.objects.create_user("listener", password="pw-12345"))
    assert client.get(url).status_code == 302


def test_bulk_approve_and_reject(staff_client, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 3, "jazz": 2}))
    rock = Sample.objects.filter(genres__name="Rock")
    act(staff_client, "approve", rock)
    jazz = Sample.objects.filter(genres__name="Jazz")
    response = act(staff_client, "reject", jazz)
    assert "2 samples now rejected" in response.content.decode()
    assert set(Sample.objects.filter(genres__name="Rock").values_list("status", flat=True)) == {
        "approved"
    }
    assert set(jazz.values_list("status", flat=True)) == {"rejected"}
    act(staff_client, "mark_proposed", jazz)
    assert set(jazz.values_list("status", flat=True)) == {"proposed"}


def test_relabel_asks_for_the_genre_then_relabels(staff_client, staff, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 2}))
    sample = Sample.objects.get(original_name="rock.00001.flac")
    # A stored verdict: relabelling recomputes the disagreement from it.
    Sample.objects.filter(pk=sample.pk).update(
        verdict_genre="Jazz",
        verdict_confidence=0.8,
        verdict_probabilities={"Jazz": 0.8, "Rock": 0.2},
        disagreement=0.8,
        uncertainty=0.2,
    )
    form = act(staff_client, "relabel", [sample])
    assert b'id="relabel-form"' in form.content
    jazz = Genre.objects.get(name="Jazz")
    done = act(
        staff_client,
        "relabel",
        [sample],
        apply="Relabel",
        genres=[jazz.pk],
        mode="replace",
        approve="on",
    )
    assert "1 sample relabelled Jazz" in done.content.decode()
    sample.refresh_from_db()
    assert sample.genre_names() == ["Jazz"] and sample.status == "approved"
    assert sample.disagreement == pytest.approx(0.2)
    assert f"relabelled Rock -> Jazz by {staff}" in sample.notes
    other = Sample.objects.get(original_name="rock.00000.flac")
    assert other.genre_names() == ["Rock"] and other.status == "proposed"
    # Adding a genre keeps the ones a sample has.
    blues = Genre.objects.get(name="Blues")
    act(staff_client, "relabel", [other], apply="Relabel", genres=[blues.pk], mode="add")
    assert other.genre_names() == ["Blues", "Rock"]
    assert f"relabelled Rock -> Blues, Rock by {staff}" in Sample.objects.get(pk=other.pk).notes


def test_accept_the_models_verdict(staff_client, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 2}))
    wrong, right = Sample.objects.order_by("original_name")
    Sample.objects.filter(pk=wrong.pk).update(
        verdict_genre="Metal", verdict_probabilities={"Metal": 0.9, "Rock": 0.1}
    )
    Sample.objects.filter(pk=right.pk).update(
        verdict_genre="Rock", verdict_probabilities={"Rock": 0.9}
    )
    act(staff_client, "accept_verdict", [wrong, right])
    wrong.refresh_from_db()
    right.refresh_from_db()
    assert wrong.genre_names() == ["Metal"] and wrong.disagreement == pytest.approx(0.1)
    assert right.genre_names() == ["Rock"] and right.notes == ""


def test_accept_a_multi_label_verdict_takes_every_genre_it_says(staff_client, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 1}))
    sample = Sample.objects.get()
    Sample.objects.filter(pk=sample.pk).update(
        verdict_genre="Electronic",
        verdict_multi_label=True,
        verdict_probabilities={"Electronic": 0.9, "House": 0.7, "Rock": 0.2},
    )
    act(staff_client, "accept_verdict", [sample])
    sample.refresh_from_db()
    assert sample.genre_names() == ["Electronic", "House"]
    # Multi-label: the disagreement is the doubt about the label it believes least.
    assert sample.disagreement == pytest.approx(0.3)


def test_filter_disagreeing_samples(staff_client, tmp_path):
    import_folder(small_set(tmp_path, {"rock": 3}))
    a, b, _ = Sample.objects.order_by("original_name")
    Sample.objects.filter(pk=a.pk).update(verdict_genre="Jazz")
    Sample.objects.filter(pk=b.pk).update(verdict_genre="Rock")
    page = staff_client.get(reverse(CHANGELIST), {"verdict": "disagrees"}).content.decode()
    assert "rock.00000.flac" in page and "rock.00001.flac" not in page
    page = staff_client.get(reverse(CHANGELIST), {"verdict": "none"}).content.decode()
    assert "rock.00002.flac" in page and "rock.00000.flac" not in page


def test_sort_by_disagreement_and_uncertainty_worst_first(
    staff_client, gtzan_subset, baseline_head
):
    from django.core.management import call_command

    call_command("import_samples", str(gtzan_subset), stdout=io.StringIO(), stderr=io.StringIO())
    Sample.objects.filter(original_name="blues.00000.flac").update(
        disagreement=None, uncertainty=None, verdict_genre=""
    )  # no verdict sorts last
    for label, field in (("disagreeing", "disagreement"), ("uncertain", "uncertainty")):
        page = staff_client.get(reverse(CHANGELIST)).content.decode()
        link = re.search(rf'href="(\?o=\d+)">most {label}', page).group(1)
        listed = re.findall(
            r'class="field-name"><a [^>]*>([^<]+)</a>',
            staff_client.get(reverse(CHANGELIST) + link).content.decode(),
        )
        values = dict(Sample.objects.values_list("original_name", field))
        expected = sorted(values, key=lambda n: (values[n] is None, -(values[n] or 0)))
        assert [values[n] for n in listed] == [values[n] for n in expected]
        assert listed[-1] == "blues.00000.flac"
        # Metal is unknown to the baseline head: its samples are among the worst listed.
        if field == "disagreement":
            top = {values[n] for n in listed[:4]}
            assert top == {max(v for v in values.values() if v is not None)}


def test_import_page_takes_a_zip(staff_client, tmp_path):
    root = small_set(tmp_path / "set", {"reggae": 2, "Hip-Hop": 1})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for f in root.rglob("*.flac"):
            zf.write(f, f.relative_to(root).as_posix())
    buffer.seek(0)
    buffer.name = "set.zip"
    url = reverse("admin:curation_sample_import")
    assert b'id="import-form"' in staff_client.get(url).content
    response = staff_client.post(url, {"archive": buffer, "status": "approved"}, follow=True)
    assert "Import: 3 imported; 0 already there" in response.content.decode()
    assert sorted(Sample.objects.values_list("genres__name", "status")) == [
        ("Hip-Hop", "approved"),
        ("Reggae", "approved"),
        ("Reggae", "approved"),
    ]


def test_import_page_folder_option_and_errors(staff_client, tmp_path):
    url = reverse("admin:curation_sample_import")
    missing = staff_client.post(url, {"folder": str(tmp_path / "none"), "status": "proposed"})
    assert "is not a folder" in missing.content.decode()
    both = staff_client.post(url, {"status": "proposed"})
    assert "Give either a zip archive or a folder" in both.content.decode()
    root = small_set(tmp_path / "set", {"rock": 1})
    staff_client.post(url, {"folder": str(root), "status": "proposed"})
    assert Sample.objects.get().genre_names() == ["Rock"]


def test_import_from_a_server_folder_is_for_superusers_only(client, django_user_model, tmp_path):
    from django.contrib.auth.models import Permission

    curator = django_user_model.objects.create_user("curator2", password="pw-12345", is_staff=True)
    curator.user_permissions.add(*Permission.objects.filter(content_type__app_label="curation"))
    client.force_login(curator)
    root = small_set(tmp_path / "set", {"rock": 1})
    page = client.post(
        reverse("admin:curation_sample_import"), {"folder": str(root), "status": "proposed"}
    )
    assert page.status_code == 200 and 'name="folder"' not in page.content.decode()
    assert not Sample.objects.exists()
