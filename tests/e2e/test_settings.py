"""Settings from the environment: embedded defaults, PostgreSQL + Redis, strictness, production.

Each case starts a fresh Python process, since settings are read once at start-up.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, unavailable

SHOW = """
import json, django
django.setup()
from django.conf import settings
from genreweb.celery import app
db = settings.DATABASES["default"]
print(json.dumps({"engine": db["ENGINE"], "name": str(db["NAME"]), "broker": app.conf.broker_url,
    "acks_late": app.conf.task_acks_late, "reject": app.conf.task_reject_on_worker_lost,
    "transport": app.conf.broker_transport_options, "max_mb": settings.GENREWEB_MAX_UPLOAD_MB,
    "debug": settings.DEBUG, "media": str(settings.MEDIA_ROOT)}))
"""
# Variables these tests set or clear, so the outer environment cannot leak in.
OURS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "DEBUG",
    "SECRET_KEY",
    "GENREWEB_PRODUCTION",
    "ALLOWED_HOSTS",
    "GENREWEB_MAX_UPLOAD_MB",
    "LOG_LEVEL",
    "MEDIA_ROOT",
    "STATIC_ROOT",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def run(code: str | list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in OURS}
    full = {
        **base,
        "DJANGO_SETTINGS_MODULE": "genreweb.settings",
        "GENREWEB_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    args = [sys.executable, "-c", code] if isinstance(code, str) else [sys.executable, *code]
    return subprocess.run(args, cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


def settings_with(tmp_path: Path, **env: str) -> dict:
    result = run(SHOW, tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_nothing_set_means_sqlite_and_a_filesystem_broker(tmp_path):
    shown = settings_with(tmp_path)
    assert shown["engine"] == "django.db.backends.sqlite3"
    assert shown["name"] == str(tmp_path / "data" / "genreweb.sqlite3")
    assert shown["broker"] == "filesystem://"
    assert shown["transport"]["data_folder_in"] == shown["transport"]["data_folder_out"]
    assert Path(shown["transport"]["data_folder_in"]).is_dir()  # made for kombu
    assert shown["acks_late"] and shown["reject"]
    assert shown["max_mb"] == 200 and shown["debug"] is False
    assert shown["media"] == str(tmp_path / "data" / "media")


def test_postgres_and_redis_from_the_environment(tmp_path):
    shown = settings_with(
        tmp_path,
        DATABASE_URL="postgres://u:p%40ss@db.example:6543/music",
        CELERY_BROKER_URL="redis://cache.example:6379/2",
        GENREWEB_MAX_UPLOAD_MB="50",
    )
    assert shown["engine"] == "django.db.backends.postgresql" and shown["name"] == "music"
    assert shown["broker"] == "redis://cache.example:6379/2"
    assert shown["transport"]["visibility_timeout"] > 30 * 60  # outlasts the longest task
    assert shown["max_mb"] == 50


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("GENREWEB_MAX_UPLOAD_MB", "lots"),
        ("GENREWEB_MAX_UPLOAD_MB", "0"),
        ("DATABASE_URL", "mysql://db/music"),
        ("LOG_LEVEL", "LOUD"),
        ("GENREWEB_MIN_CONFIDENCE", "high"),
        ("GENREWEB_MIN_CONFIDENCE", "35"),
        ("CELERY_BROKER_URL", "127.0.0.1:6379"),
    ],
)
def test_malformed_values_stop_the_start_with_the_variables_name(tmp_path, name, value):
    result = run(SHOW, tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr


def test_production_mode_passes_check_deploy(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        GENREWEB_PRODUCTION="true",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="genreweb.example.org",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/webapp",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout and "WARNING" not in result.stderr


def test_development_mode_would_not_pass_check_deploy(tmp_path):
    # The same check is meaningful: it does complain about the development settings.
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path)
    assert result.returncode != 0 and "security.W" in result.stderr


def test_production_mode_refuses_a_missing_secret_key(tmp_path):
    result = run(SHOW, tmp_path, GENREWEB_PRODUCTION="true")
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_docker_compose_file_is_accepted():
    binary = shutil.which("docker-compose")
    if binary is None:
        unavailable("docker-compose (Debian's package) is not installed; make test installs it")
    result = subprocess.run(
        [binary, "-f", "docker-compose.yml", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for service in ("db:", "redis:", "web:", "worker:", "migrate:"):
        assert service in result.stdout, service
    assert "gunicorn" in result.stdout
