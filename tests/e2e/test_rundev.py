"""`manage.py rundev` on the embedded defaults: SQLite, the filesystem broker, and a worker
started by the same command, taking an upload through to a tagged file over HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from classifier.engine.filetags import read_tags
from tests.audiofiles import clip_excerpt
from tests.conftest import REPO
from tests.workers import wait_for

pytestmark = pytest.mark.worker  # rundev starts one of its own
WAIT_SECONDS = 120
SERVER_VARIABLES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(
    url: str, token: str | None = None, body: bytes | None = None, content_type: str | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body)
    if token:
        request.add_header("Authorization", f"Token {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{path.name}"\r\nContent-Type: audio/flac\r\n\r\n'
    ).encode()
    return (
        head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def test_rundev_serves_and_analyses_on_embedded_defaults(tmp_path, gtzan_dir, settings):
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.update(
        GENREWEB_DATA_DIR=str(tmp_path / "data"),
        DJANGO_SUPERUSER_PASSWORD="pw-12345",
        GENREWEB_MODEL_DIR=str(settings.GENREWEB_MODEL_DIR),
    )
    manage = [sys.executable, "manage.py"]

    def run(*args: str) -> str:
        done = subprocess.run(
            [*manage, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("migrate", "--noinput")
    run("createsuperuser", "--noinput", "--username", "owner", "--email", "o@example.org")
    token = run("drf_create_token", "owner").split()[2]
    base = f"http://127.0.0.1:{free_port()}"
    log = tmp_path / "rundev.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [*manage, "rundev", base.removeprefix("http://")],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: call(f"{base}/health/")[0] == 200,
            WAIT_SECONDS,
            "rundev to answer /health/",
            log,
        )
        health = json.loads(call(f"{base}/health/")[1])
        assert health["database"]["vendor"] == "sqlite"
        assert health["broker"] == {"ok": True, "url": "filesystem://"}

        body, content_type = multipart(clip_excerpt(gtzan_dir, tmp_path, "country", 1))
        status, answer = call(f"{base}/api/tracks/", token, body, content_type)
        assert status == 201, answer
        detail = f"{base}/api/tracks/{json.loads(answer)['id']}/"

        def finished() -> bool:
            code, data = call(detail, token)
            return code == 200 and json.loads(data)["status"] in ("done", "failed")

        wait_for(finished, WAIT_SECONDS, "the worker started by rundev to analyse the upload", log)
        track = json.loads(call(detail, token)[1])
        assert track["status"] == "done", track["error"]
        status, content = call(track["download_url"], token)
        downloaded = tmp_path / "downloaded.flac"
        downloaded.write_bytes(content)
        assert read_tags(downloaded).genres == track["genres_after"]
        assert track["genres_after"][0] == "Country"  # then any other genre it is given
    finally:
        server.send_signal(signal.SIGTERM)  # rundev stops its worker too
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    worker = int(re.search(r"worker pid (\d+)", log.read_text()).group(1))

    def group_gone() -> bool:
        return all(
            subprocess.run(
                ["ps", "-o", "pid=", "-g", str(group)], capture_output=True, text=True
            ).stdout.split()
            == []
            for group in (server.pid, worker)
        )

    wait_for(group_gone, 60, "rundev's worker processes to stop", log)
