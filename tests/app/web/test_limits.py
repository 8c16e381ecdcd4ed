"""Request bodies are refused by size before anything spools them to disk.

A body over what the client may send (GENREWEB_ANONYMOUS_MAX_KB without a login, the upload
limit with one) is answered 413 from its Content-Length, unread; a chunked body 411; and an
upload that passes the limit part way is stopped there by the first upload handler.
"""

from __future__ import annotations

import http.client
import select
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.core.files import uploadhandler
from django.test import Client
from rest_framework.authtoken.models import Token

from classifier.models import Track
from tests.app.web.helpers import PASSWORD, audio_bytes, multipart


class Spool:
    """What the temporary-file upload handler wrote: how many files, how many bytes."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0
        self.largest = 0


@pytest.fixture
def spooled(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spool:
    """Uploads spool into a folder of this test; every byte written to one is counted."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "spool")
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir()
    spool = Spool()
    handler = uploadhandler.TemporaryFileUploadHandler
    original_new, original_receive = handler.new_file, handler.receive_data_chunk

    def new_file(self, *args, **kwargs):
        spool.files += 1
        self._spooled = 0
        return original_new(self, *args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self._spooled += len(raw_data)
        spool.bytes += len(raw_data)
        spool.largest = max(spool.largest, self._spooled)
        return original_receive(self, raw_data, start)

    monkeypatch.setattr(handler, "new_file", new_file)
    monkeypatch.setattr(handler, "receive_data_chunk", receive_data_chunk)
    return spool


def spool_dir() -> list[Path]:
    return list(Path(django_settings.FILE_UPLOAD_TEMP_DIR).iterdir())


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD)


# ---------------------------------------------------------------- by Content-Length


@pytest.mark.django_db
def test_an_oversized_body_to_the_login_page_is_refused_unread(spooled):
    body, content_type = multipart("big.bin", b"x" * (200 * 1024), username="alice")
    response = Client().generic("POST", "/accounts/login/", body, content_type=content_type)
    assert response.status_code == 413
    assert "64 KB" in response.content.decode() and "Log in to upload" in response.content.decode()
    assert spooled.files == 0 and spooled.bytes == 0 and spool_dir() == []


@pytest.mark.django_db
def test_a_post_with_only_a_csrf_cookie_is_limited_too(spooled):
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a" * 32
    body, content_type = multipart("big.bin", b"x" * (100 * 1024))
    response = client.generic(
        "POST", "/upload/", body, content_type=content_type, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 413 and "64 KB" in response.json()["error"]
    assert spooled.bytes == 0 and spool_dir() == []


@pytest.mark.django_db(transaction=True)
def test_the_server_answers_413_before_the_body_arrives(live_server, spooled):
    """A real server, a client that announces 50 MB and sends 64 KB: the answer comes at
    once (nothing waits for, or spools, the rest). With a CSRF cookie, as the CSRF check
    reads the body only when there is one to compare with."""
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.putrequest("POST", "/accounts/login/")
        connection.putheader("Cookie", "csrftoken=" + "a" * 32)
        connection.putheader("Content-Type", "multipart/form-data; boundary=xyz")
        connection.putheader("Content-Length", str(50 * 1024 * 1024))
        connection.endheaders()
        connection.send(
            b'--xyz\r\nContent-Disposition: form-data; name="file"; '
            b'filename="big.bin"\r\n\r\n' + b"x" * (64 * 1024)
        )
        started = time.monotonic()
        response = connection.getresponse()
        answer = response.read().decode()
        assert response.status == 413, answer
        assert time.monotonic() - started < 5
    finally:
        connection.close()
    assert spooled.bytes == 0 and spool_dir() == []


# ---------------------------------------------------------------- chunked bodies


def send_chunked(url: str, path: str, total: int, cookie: str = "") -> tuple[int, str, int]:
    """POST `total` bytes of chunked multipart body to a real server, stopping as soon as
    it answers; (status, answer, bytes sent)."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        "Transfer-Encoding: chunked\r\nAccept: application/json\r\n"
        + (f"Cookie: {cookie}\r\n" if cookie else "")
        + "\r\n"
    )
    chunk = b"x" * 16384
    sent = 0
    try:
        sock.sendall(head.encode())
        opening = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(opening), opening))
        while sent < total and not select.select([sock], [], [], 0.01)[0]:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read().decode(), sent
    finally:
        sock.close()


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_is_cut_off_before_it_reaches_disk(live_server, spooled, user):
    status, answer, sent = send_chunked(live_server.url, "/accounts/login/", 4 * 1024 * 1024)
    assert status == 411 and "Content-Length" in answer
    assert sent < 1024 * 1024  # answered long before the 4 MB were sent
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    status, answer, sent = send_chunked(live_server.url, "/upload/", 4 * 1024 * 1024, cookie)
    assert status == 411, answer
    assert spooled.bytes == 0 and spool_dir() == []


# ---------------------------------------------------------------- the streaming cap


@pytest.mark.django_db
def test_an_upload_over_the_limit_is_stopped_as_it_passes_it(spooled, user, settings):
    """A body just inside the request limit (the framing allowance) whose file is over the
    per-file limit: the upload handler stops it at the limit, the view never runs."""
    settings.GENREWEB_MAX_UPLOAD_MB = 1
    limit = 1024 * 1024
    client = Client()
    client.force_login(user)
    body, content_type = multipart("song.mp3", b"x" * (limit + 32 * 1024))
    response = client.generic(
        "POST", "/upload/", body, content_type=content_type, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"] == "song.mp3 is over the limit of 1 MB per file."
    assert spooled.largest <= limit  # never more than the limit on disk
    assert spool_dir() == [] and not Track.objects.exists()


# ---------------------------------------------------------------- who may send how much


@pytest.mark.django_db
def test_uploads_by_session_and_by_token_still_work(spooled, user, settings, tmp_path):
    settings.GENREWEB_ANONYMOUS_MAX_KB = 16
    sound = audio_bytes(tmp_path / "audio", seconds=10.0)
    assert len(sound) > 32 * 1024  # over what an anonymous client may send
    body, content_type = multipart("song.mp3", sound, tag_policy="fill")

    session = Client()
    session.force_login(user)
    response = session.generic(
        "POST", "/upload/", body, content_type=content_type, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 201, response.content

    token = Token.objects.create(user=user)
    other = audio_bytes(tmp_path / "audio2", seconds=10.0, seed=1)
    body, content_type = multipart("other.mp3", other)
    response = Client().generic(
        "POST",
        "/api/tracks/",
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION=f"Token {token.key}",
    )
    assert response.status_code == 201, response.content
    assert Track.objects.filter(owner=user).count() == 2

    # A wrong token is no login: the anonymous limit applies, and nothing is read.
    spooled.bytes = 0
    response = Client().generic(
        "POST",
        "/api/tracks/",
        body,
        content_type=content_type,
        HTTP_AUTHORIZATION="Token not-a-real-token",
    )
    assert response.status_code == 413 and "16 KB" in response.json()["error"]
    assert spooled.bytes == 0
