"""GET /health/: database, broker and model status."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.postgres(reason="it reads the PostgreSQL vendor in the answer")
def test_everything_up():
    response = Client().get(reverse("health"))  # no login needed, for load balancers
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "vendor": "postgresql"}
    assert body["broker"]["ok"] is True
    assert body["model"]["ok"] is True and body["model"]["head"].endswith(".safetensors")


def test_broker_down_is_503_without_leaking_the_password(monkeypatch):
    # Celery reads CELERY_BROKER_URL from the environment before its own settings.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:s3cret@127.0.0.1:1/0")
    response = Client().get(reverse("health"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error" and body["broker"]["ok"] is False
    assert "s3cret" not in response.content.decode()
    assert body["broker"]["url"] == "redis://:***@127.0.0.1:1/0"
    assert body["database"]["ok"] is True


def test_missing_model_is_reported_but_the_site_is_up(settings, tmp_path):
    settings.GENREWEB_HEAD_PATH = str(tmp_path / "no-such-head.safetensors")
    response = Client().get(reverse("health"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["model"]["ok"] is False and "no-such-head" in body["model"]["error"]
