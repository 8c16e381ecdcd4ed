"""The pages: accounts, upload, dashboard, track page, downloads, bulk actions, ownership."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from classifier.engine.filetags import read_tags, write_genres
from classifier.models import Status, TagBatch, Track
from classifier.services import intake, processing
from classifier.tasks import run_tag_batch
from tests.app.web.conftest import PASSWORD

pytestmark = pytest.mark.django_db
JSON = {"HTTP_ACCEPT": "application/json"}


# ---------------------------------------------------------------- accounts


def test_sign_up_log_out_log_in():
    client = Client()
    response = client.post(
        reverse("signup"), {"username": "newcomer", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302 and response.url == reverse("upload")
    assert client.get(reverse("dashboard")).status_code == 200  # logged in right away
    client.post(reverse("logout"))
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302 and reverse("login") in response.url
    response = client.post(reverse("login"), {"username": "newcomer", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("dashboard")).status_code == 200


def test_sign_up_refuses_a_weak_password():
    response = Client().post(
        reverse("signup"), {"username": "weak", "password1": "1234", "password2": "1234"}
    )
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="weak").exists()


def test_admin_is_for_staff_only(alice, user, django_user_model):
    assert alice.get("/admin/").status_code == 302  # to the admin login
    staff = django_user_model.objects.create_user(
        "boss", password=PASSWORD, is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/classifier/track/").status_code == 200


def test_pages_need_a_login():
    for name in ("dashboard", "upload", "profile"):
        response = Client().get(reverse(name))
        assert response.status_code == 302 and reverse("login") in response.url, name


# ---------------------------------------------------------------- upload


def test_upload_page_has_the_drop_zone(alice):
    page = alice.get(reverse("upload")).content.decode()
    assert 'id="dropzone"' in page and "multiple" in page and "js/upload.js" in page
    assert "200 MB" in page


def test_xhr_upload_answers_json_and_queues(
    alice, user, make_upload, django_capture_on_commit_callbacks
):
    upload = make_upload("ogg")
    content = upload.read()
    upload.seek(0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = alice.post(reverse("upload"), {"file": upload, "tag_policy": "merge"}, **JSON)
    assert response.status_code == 201
    body = response.json()
    track = Track.objects.get(owner=user)
    assert body["id"] == track.pk and body["status"] == "pending" and not body["duplicate"]
    assert body["status_url"] == reverse("track-status", args=[track.pk])
    assert track.tag_policy == "merge"
    assert len(callbacks) == 1
    same = SimpleUploadedFile("other-name.ogg", content)
    again = alice.post(reverse("upload"), {"file": same}, **JSON)
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_refused_upload_explains_itself(alice, settings, make_upload):
    response = alice.post(
        reverse("upload"),
        {"file": SimpleUploadedFile("notes.mp3", b"shopping list: milk, eggs" * 40)},
        **JSON,
    )
    assert response.status_code == 400
    assert "notes.mp3" in response.json()["error"]
    settings.GENREWEB_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("long.wav", b"\0" * (2 * 1024 * 1024))
    response = alice.post(reverse("upload"), {"file": big}, **JSON)
    assert response.status_code == 413 and "limit is 1 MB" in response.json()["error"]
    assert not Track.objects.exists()


def test_form_upload_without_javascript(alice, make_upload, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = alice.post(reverse("upload"), {"file": make_upload("wav")}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    assert "queued for analysis" in response.content.decode()


def test_status_endpoint_follows_the_analysis(alice, pending_track):
    url = reverse("track-status", args=[pending_track.pk])
    assert alice.get(url).json()["stage"] == "queued"
    token = processing.claim_track(pending_track.pk)
    processing.progress_reporter(pending_track.pk, token)("analysing", 0.5)
    body = alice.get(url).json()
    assert (body["status"], body["stage"], body["progress"]) == ("processing", "analysing", 0.5)


# ---------------------------------------------------------------- dashboard


@pytest.fixture
def library(user, analysed_track):
    """The analysed classical clip plus three made-up analysed rows to filter and sort."""
    rows = [
        ("Blue Train", "Coltrane", "Blue Train", "Jazz", 0.9, 400.0),
        ("Paranoid", "Black Sabbath", "Paranoid", "Metal", 0.8, 170.0),
        ("Mystery", "Nobody", "", "", 0.3, 60.0),
    ]
    for n, (title, artist, album, genre, conf, duration) in enumerate(rows):
        Track.objects.create(
            owner=user,
            file=analysed_track.file.name,
            original_name=f"{n}.mp3",
            sha256=f"{n:064d}",
            size=1,
            status=Status.DONE,
            title=title,
            artist=artist,
            album=album,
            primary_genre=genre,
            confidence=conf,
            uncertain=not genre,
            duration=duration,
            genres_before=["Rock"] if genre == "Metal" else [],
            verdict={"genres": [{"name": genre or "Pop", "confidence": conf}]},
        )
    Track.objects.filter(pk=analysed_track.pk).update(title="Adagio", artist="Orchestra")
    return Track.objects.filter(owner=user)


def titles(response) -> list[str]:
    return [t.display_title for t in response.context["tracks"]]


def test_dashboard_lists_the_library(alice, library):
    response = alice.get(reverse("dashboard"))
    page = response.content.decode()
    assert response.context["total"] == 4
    for text in (
        "Adagio",
        "Orchestra",
        "Coltrane",
        "Blue Train",
        "6:40",
        "Classical",
        "uncertain",
        "Rock",
        "badge-done",
    ):
        assert text in page, text
    shares = {c.genre: c.count for c in response.context["distribution"]}
    assert shares == {"Classical": 1, "Jazz": 1, "Metal": 1, "uncertain": 1}
    assert 'aria-label="Genre distribution chart"' in page


def test_dashboard_filters_searches_sorts_and_paginates(alice, library, settings):
    url = reverse("dashboard")
    assert titles(alice.get(url, {"genre": "Jazz"})) == ["Blue Train"]
    assert titles(alice.get(url, {"genre": "uncertain"})) == ["Mystery"]
    assert titles(alice.get(url, {"q": "sabbath"})) == ["Paranoid"]
    assert titles(alice.get(url, {"q": "blue coltrane"})) == ["Blue Train"]
    assert titles(alice.get(url, {"sort": "title"})) == [
        "Adagio",
        "Blue Train",
        "Mystery",
        "Paranoid",
    ]
    assert titles(alice.get(url, {"sort": "-duration"}))[0] == "Blue Train"
    assert titles(alice.get(url, {"sort": "confidence"}))[0] == "Adagio"
    settings.GENREWEB_PAGE_SIZE = 3
    first = alice.get(url, {"sort": "title"})
    second = alice.get(url, {"sort": "title", "page": 2})
    assert titles(first) == ["Adagio", "Blue Train", "Mystery"]
    assert titles(second) == ["Paranoid"]
    assert "Page 1 of 2" in first.content.decode()
    # A search's pages are read without counting its matches: no "of", one row looked ahead.
    settings.GENREWEB_PAGE_SIZE = 2
    searched = alice.get(url, {"sort": "title", "q": "a"})
    assert titles(searched) == ["Adagio", "Blue Train"]
    assert "Page 1</span>" in searched.content.decode() and "Next" in searched.content.decode()
    last = alice.get(url, {"sort": "title", "q": "a", "page": 2})
    assert titles(last) == ["Paranoid"] and "Next" not in last.content.decode()
    assert "Previous" in last.content.decode()


def test_dashboard_reanalyses_tracks_made_by_an_older_model(alice, library, mallory):
    current = Track.objects.get(title="Adagio").model_version
    assert current.startswith("musicnn-msd-")
    Track.objects.filter(title__in=["Blue Train", "Paranoid"]).update(model_version=current)
    Track.objects.filter(title="Mystery").update(model_version="musicnn-msd-0+head-old")
    page = alice.get(reverse("dashboard")).content.decode()
    assert "1 track analysed by an older model version" in page and 'id="outdated"' in page
    mallory.post(reverse("reanalyse-outdated"))  # another user's click touches nothing of alice's
    assert Track.objects.get(title="Mystery").status == Status.DONE
    alice.post(reverse("reanalyse-outdated"))
    assert Track.objects.get(title="Mystery").status == Status.PENDING
    assert Track.objects.get(title="Adagio").status == Status.DONE
    assert 'id="outdated"' not in alice.get(reverse("dashboard")).content.decode()


def test_dashboard_shows_only_ones_own_tracks(mallory, library):
    response = mallory.get(reverse("dashboard"))
    assert response.context["total"] == 0 and "Adagio" not in response.content.decode()


def test_bulk_zip_download(alice, analysed_track, pending_track):
    response = alice.post(
        reverse("bulk"), {"action": "download", "tracks": [analysed_track.pk, pending_track.pk]}
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert len(archive.namelist()) == 2
    member = archive.read(analysed_track.original_name)
    assert member == Path(analysed_track.file.path).read_bytes()


def test_bulk_write_tags_and_reanalyse(alice, analysed_track, django_capture_on_commit_callbacks):
    write_genres(analysed_track.file.path, ["Soundtrack"], policy="replace")
    # As the analysis would have read it (a preview shows the files as last analysed).
    Track.objects.filter(pk=analysed_track.pk).update(genres_after=["Soundtrack"])
    response = alice.post(
        reverse("bulk"),
        {"action": "write_tags", "tag_policy": "merge", "tracks": [analysed_track.pk]},
        follow=True,
    )
    plan = response.context["plan"]  # the selection's changes, previewed first
    assert [(row.before, row.after) for row in plan.rows] == [
        (["Soundtrack"], ["Soundtrack", "Classical"])
    ]
    assert read_tags(analysed_track.file.path).genres == ["Soundtrack"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice.post(reverse("tag-apply"), {"tracks": [analysed_track.pk], "policy": plan.policy})
    assert len(callbacks) == 1
    run_tag_batch(TagBatch.objects.get().pk)
    assert read_tags(analysed_track.file.path).genres == ["Soundtrack", "Classical"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice.post(reverse("bulk"), {"action": "reanalyse", "tracks": [analysed_track.pk]})
    assert len(callbacks) == 1
    assert Track.objects.get(pk=analysed_track.pk).status == Status.PENDING


def test_bulk_needs_a_policy_to_write_tags(alice, analysed_track):
    response = alice.post(
        reverse("bulk"), {"action": "write_tags", "tracks": [analysed_track.pk]}, follow=True
    )
    assert "Choose how to write the tags" in response.content.decode()


# ---------------------------------------------------------------- track page


def test_track_page_shows_the_verdict(alice, analysed_track):
    response = alice.get(reverse("track-detail", args=[analysed_track.pk]))
    page = response.content.decode()
    for text in (
        "Spectrogram",
        "Genre timeline",
        "Every genre",
        "Styles",
        "Songs like this",
        reverse("track-spectrogram", args=[analysed_track.pk]),
        reverse("track-timeline", args=[analysed_track.pk]),
        reverse("track-download", args=[analysed_track.pk]),
        "Classical",
        analysed_track.model_version,
        analysed_track.styles[0]["name"],
    ):
        assert text in page, text
    assert page.count('class="g-name"') >= 10 + 3  # every genre, and the top three


def test_pictures_are_pngs_and_cached(alice, analysed_track, media_root):
    for name in ("track-spectrogram", "track-timeline"):
        response = alice.get(reverse(name, args=[analysed_track.pk]))
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
        assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    cached = sorted(p.name.split("-")[0] for p in Path(media_root, "cache").rglob("*.png"))
    assert cached == ["spectrogram", "timeline"]


def test_download_is_the_tagged_file(alice, analysed_track):
    response = alice.get(reverse("track-download", args=[analysed_track.pk]))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    assert body == Path(analysed_track.file.path).read_bytes()
    download = Path(analysed_track.file.path).with_name("copy.flac")
    download.write_bytes(body)
    assert read_tags(download).genres == ["Classical"]


def test_retag_and_reanalyse_from_the_track_page(
    alice, analysed_track, django_capture_on_commit_callbacks
):
    write_genres(analysed_track.file.path, ["Soundtrack"], policy="replace")
    alice.post(reverse("track-retag", args=[analysed_track.pk]), {"tag_policy": "replace"})
    assert read_tags(analysed_track.file.path).genres == ["Classical"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alice.post(reverse("track-reanalyse", args=[analysed_track.pk]))
    assert len(callbacks) == 1


def test_delete_from_the_track_page(alice, pending_track):
    path = Path(pending_track.file.path)
    alice.post(reverse("track-delete", args=[pending_track.pk]))
    assert not Track.objects.exists() and not path.exists()


# ---------------------------------------------------------------- ownership

TRACK_VIEWS = [
    ("get", "track-detail"),
    ("get", "track-status"),
    ("get", "track-download"),
    ("get", "track-spectrogram"),
    ("get", "track-timeline"),
    ("post", "track-reanalyse"),
    ("post", "track-retag"),
    ("post", "track-delete"),
]


@pytest.mark.parametrize(("method", "name"), TRACK_VIEWS)
def test_another_users_track_is_404(mallory, analysed_track, method, name):
    response = getattr(mallory, method)(
        reverse(name, args=[analysed_track.pk]),
        {"tag_policy": "replace"} if method == "post" else {},
    )
    assert response.status_code == 404
    track = Track.objects.get(pk=analysed_track.pk)  # still there, unchanged
    assert track.status == Status.DONE and track.tag_policy == analysed_track.tag_policy


@pytest.mark.parametrize("action", ["download", "reanalyse", "write_tags", "delete"])
def test_bulk_with_another_users_track_is_404(
    mallory, other_user, analysed_track, action, make_upload, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        theirs = intake.accept_upload(other_user, make_upload()).track
    response = mallory.post(
        reverse("bulk"),
        {"action": action, "tag_policy": "replace", "tracks": [theirs.pk, analysed_track.pk]},
    )
    assert response.status_code == 404
    assert Track.objects.get(pk=analysed_track.pk).status == Status.DONE
