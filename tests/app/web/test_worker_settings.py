"""The settings of heartbeats, sweeps and temporary files, read from the environment in a
fresh process each (settings are read once at start-up)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SHOW = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({"heartbeat": s.GENREWEB_HEARTBEAT_TIMEOUT, "sweep": s.GENREWEB_SWEEP_EVERY,
    "cleanup": s.GENREWEB_CLEANUP_EVERY, "upload_dir": s.FILE_UPLOAD_TEMP_DIR,
    "schedule": {k: v["schedule"] for k, v in s.CELERY_BEAT_SCHEDULE.items()}}))
"""
OURS = (
    "GENREWEB_HEARTBEAT_TIMEOUT",
    "GENREWEB_SWEEP_EVERY",
    "GENREWEB_CLEANUP_EVERY",
    "FILE_UPLOAD_TEMP_DIR",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
)


def show(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    full = {
        **{k: v for k, v in os.environ.items() if k not in OURS},
        "DJANGO_SETTINGS_MODULE": "genreweb.settings",
        "GENREWEB_DATA_DIR": str(tmp_path / "data"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=REPO,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_defaults(tmp_path):
    result = show(tmp_path)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.splitlines()[-1])
    assert (shown["heartbeat"], shown["sweep"], shown["cleanup"]) == (90, 60, 3600)
    assert shown["upload_dir"] is None
    assert shown["schedule"] == {
        "rescan-libraries": 3600.0,
        "requeue-stale-tracks": 60.0,
        "refresh-library-indexes": 60.0,
        "remove-stale-temporaries": 3600.0,
    }


def test_an_upload_folder_is_made(tmp_path):
    result = show(
        tmp_path,
        FILE_UPLOAD_TEMP_DIR=str(tmp_path / "spool" / "uploads"),
        GENREWEB_HEARTBEAT_TIMEOUT="12",
        GENREWEB_SWEEP_EVERY="1",
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.splitlines()[-1])
    assert shown["upload_dir"] == str(tmp_path / "spool" / "uploads")
    assert (tmp_path / "spool" / "uploads").is_dir()
    assert (shown["heartbeat"], shown["sweep"]) == (12, 1)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GENREWEB_HEARTBEAT_TIMEOUT", "soon"),
        ("GENREWEB_HEARTBEAT_TIMEOUT", "2"),
        ("GENREWEB_SWEEP_EVERY", "0"),
        ("GENREWEB_CLEANUP_EVERY", "59"),
    ],
)
def test_malformed_values_stop_the_start_with_the_variables_name(tmp_path, name, value):
    result = show(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and name in result.stderr
