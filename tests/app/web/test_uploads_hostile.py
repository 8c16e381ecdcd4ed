"""Hostile or odd uploads: messages name only the user's file, audio is stored and served
as what it is (never as the HTML its name claims), and odd names get a clear result."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from django.test import Client
from rest_framework.authtoken.models import Token

from classifier.models import Track
from tests.app.web.helpers import PASSWORD, audio_bytes, multipart

pytestmark = pytest.mark.django_db


@pytest.fixture
def clients(settings, tmp_path: Path, django_user_model) -> tuple[Client, Client]:
    """Alice's browser session and her API client (by token); uploads go to this test's
    own folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    alice = django_user_model.objects.create_user("alice", password=PASSWORD)
    session = Client()
    session.force_login(alice)
    return session, Client(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=alice).key}")


@pytest.fixture
def api(clients: tuple[Client, Client]) -> Client:
    return clients[1]


@pytest.fixture
def mp3(tmp_path: Path) -> bytes:
    return audio_bytes(tmp_path / "audio")


def upload(client: Client, filename: str, content: bytes, path: str = "/api/tracks/"):
    body, content_type = multipart(filename, content)
    return client.generic(
        "POST", path, body, content_type=content_type, HTTP_ACCEPT="application/json"
    )


# ---------------------------------------------------------------- messages


def test_a_refusal_names_the_users_file_not_the_servers_temporary_one(clients):
    text = b"<!doctype html><title>plain</title><p>not music at all</p>\n" * 20
    session, api = clients
    for client, path in ((session, "/upload/"), (api, "/api/tracks/")):
        response = upload(client, "plain.html", text, path)
        assert response.status_code == 400, response.content
        message = response.json()["error"]
        assert message.startswith("plain.html was refused: it is not an audio file"), message
        assert "tmp" not in message and ".upload" not in message, message


# ---------------------------------------------------------------- stored and served as audio


def test_an_mp3_named_html_is_stored_and_served_as_mp3(clients, mp3):
    session, api = clients
    response = upload(api, "evil.html", mp3)
    assert response.status_code == 201, response.content
    track = Track.objects.get()
    assert PurePosixPath(track.file.name).name == "evil.mp3"
    assert track.original_name == "evil.html"  # what the user called it, for the list
    for client, url in (
        (session, f"/tracks/{track.pk}/download/"),
        (api, f"/api/tracks/{track.pk}/download/"),
    ):
        download = client.get(url)
        assert download.status_code == 200
        assert download["Content-Type"] == "audio/mpeg"
        assert download["Content-Disposition"] == 'attachment; filename="evil.mp3"'
        assert b"".join(download.streaming_content) == mp3


@pytest.mark.parametrize(
    ("fmt", "stored"),
    [("flac", ".flac"), ("ogg", ".ogg"), ("opus", ".opus"), ("m4a", ".m4a"), ("wav", ".wav")],
)
def test_the_stored_extension_follows_the_audio_found(api, tmp_path, fmt, stored):
    assert upload(api, "track.txt", audio_bytes(tmp_path, fmt)).status_code == 201
    track = Track.objects.get()
    assert track.file.name.endswith("/track" + stored)


# ---------------------------------------------------------------- odd names


@pytest.mark.parametrize("name", [".", "..", "/"])
def test_a_file_sent_under_no_usable_name_is_kept_under_a_safe_one(api, mp3, name):
    response = upload(api, name, mp3)
    assert response.status_code == 201, response.content
    track = Track.objects.get()
    assert track.original_name == "unnamed"
    assert PurePosixPath(track.file.name).name == "unnamed.mp3"


def test_no_usable_name_and_no_audio_is_refused_clearly(api):
    response = upload(api, "..", b"just some text, not music\n" * 10)
    assert response.status_code == 400
    assert response.json()["error"].startswith("unnamed was refused: it is not an audio file")


@pytest.mark.parametrize(
    "name",
    [
        "a" * 300 + ".mp3",  # longer than a file name on disk may be
        "音" * 150 + ".mp3",  # 150 characters, 450 bytes of UTF-8
        "song." + "x" * 300,  # an "extension" longer than any file name
    ],
)
def test_a_very_long_name_is_accepted_shortened(api, mp3, name):
    response = upload(api, name, mp3)
    assert response.status_code == 201, response.content
    track = Track.objects.get()
    assert len(track.original_name.encode()) <= 200
    assert track.original_name[:3] == name[:3]
    stored = PurePosixPath(track.file.name).name
    assert stored.endswith(".mp3") and len(stored.encode()) <= 120
    assert Path(track.file.path).is_file()
