"""The REST API: token and session auth, upload, list, detail, download, re-analyse, schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from classifier.models import Status, Track
from classifier.services import processing
from tests.app.web.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(user) -> APIClient:
    """Alice's client, authenticated by token only."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def mallory_api(other_user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other_user).key}")
    return client


def test_anonymous_is_refused():
    assert APIClient().get(reverse("api:track-list")).status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert bad.get(reverse("api:track-list")).status_code == 401


def test_token_is_obtained_with_the_password(user):
    response = APIClient().post(reverse("api-token"), {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["token"] == Token.objects.get(user=user).key


def test_profile_page_makes_a_token(alice, user):
    alice.post(reverse("profile"))
    key = Token.objects.get(user=user).key
    assert key in alice.get(reverse("profile")).content.decode()


def test_upload_then_duplicate(api, user, make_upload, django_capture_on_commit_callbacks):
    upload = make_upload("m4a")
    content = upload.read()
    upload.seek(0)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(
            reverse("api:track-list"), {"file": upload, "tag_policy": "replace"}, format="multipart"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["tag_policy"] == "replace"
    assert body["original_name"].endswith(".m4a") and len(body["sha256"]) == 64
    assert len(callbacks) == 1
    again = api.post(
        reverse("api:track-list"),
        {"file": SimpleUploadedFile("copy.m4a", content)},
        format="multipart",
    )
    assert again.status_code == 200 and again.json()["id"] == body["id"]


def test_upload_refusals(api, settings):
    response = api.post(
        reverse("api:track-list"),
        {"file": SimpleUploadedFile("a.flac", b"not audio at all" * 99)},
        format="multipart",
    )
    assert response.status_code == 400 and "a.flac" in response.json()["error"]
    assert api.post(reverse("api:track-list"), {}, format="multipart").status_code == 400
    settings.GENREWEB_MAX_UPLOAD_MB = 1
    big = SimpleUploadedFile("big.wav", b"\0" * (2 * 1024 * 1024))
    response = api.post(reverse("api:track-list"), {"file": big}, format="multipart")
    assert response.status_code == 413


def test_list_and_detail(api, analysed_track, pending_track):
    listing = api.get(reverse("api:track-list")).json()
    assert listing["count"] == 2
    assert {t["id"] for t in listing["results"]} == {analysed_track.pk, pending_track.pk}
    classical = api.get(reverse("api:track-list"), {"genre": "Classical"}).json()
    assert [t["id"] for t in classical["results"]] == [analysed_track.pk]
    assert api.get(reverse("api:track-list"), {"genre": "polka"}).status_code == 400
    detail = api.get(reverse("api:track-detail", args=[analysed_track.pk])).json()
    assert detail["primary_genre"] == "Classical" and detail["genres_after"] == ["Classical"]
    assert len(detail["timeline"]) == 3 and len(detail["probabilities"]) >= 10
    assert detail["genres"][0] == {
        "name": "Classical",
        "parent": None,
        "confidence": analysed_track.genres[0]["confidence"],
    }
    assert detail["download_url"].endswith(reverse("api:track-download", args=[analysed_track.pk]))


def test_download(api, analysed_track):
    response = api.get(reverse("api:track-download", args=[analysed_track.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == Path(analysed_track.file.path).read_bytes()


def test_reanalyse(api, analysed_track, pending_track, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api.post(reverse("api:track-reanalyse", args=[analysed_track.pk]))
    assert response.status_code == 202 and response.json()["queued"] is True
    assert response.json()["track"]["status"] == "pending"
    assert len(callbacks) == 1
    processing.claim_track(pending_track.pk)
    busy = api.post(reverse("api:track-reanalyse", args=[pending_track.pk]))
    assert busy.status_code == 409


def test_session_authentication_works_too(alice, analysed_track):
    response = alice.get(reverse("api:track-detail", args=[analysed_track.pk]))
    assert response.status_code == 200 and response.json()["id"] == analysed_track.pk


def test_session_writes_need_csrf(user, analysed_track):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(reverse("api:track-reanalyse", args=[analysed_track.pk]))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "api:track-detail"),
        ("get", "api:track-download"),
        ("post", "api:track-reanalyse"),
        ("delete", "api:track-detail"),
    ],
)
def test_another_users_track_is_404(mallory_api, analysed_track, method, name):
    response = getattr(mallory_api, method)(reverse(name, args=[analysed_track.pk]))
    assert response.status_code == 404
    assert Track.objects.get(pk=analysed_track.pk).status == Status.DONE
    assert mallory_api.get(reverse("api:track-list")).json()["count"] == 0


def test_delete(api, pending_track):
    path = Path(pending_track.file.path)
    assert api.delete(reverse("api:track-detail", args=[pending_track.pk])).status_code == 204
    assert not Track.objects.exists() and not path.exists()


def test_openapi_schema_describes_the_endpoints(alice):
    response = alice.get(reverse("api-schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    assert {
        "/api/tracks/",
        "/api/tracks/{id}/",
        "/api/tracks/{id}/download/",
        "/api/tracks/{id}/reanalyse/",
    } <= set(paths)
    assert "multipart/form-data" in paths["/api/tracks/"]["post"]["requestBody"]["content"]
    assert {"tokenAuth", "cookieAuth"} <= set(schema["components"]["securitySchemes"])
