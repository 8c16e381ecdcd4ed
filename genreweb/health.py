"""GET /health/: is the database reachable, the broker reachable, the model installed?

Answers 200 when the database and the broker work (the model is reported, since a missing
model fails analyses but not the site), 503 otherwise. Cheap: it never loads the model.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

BROKER_TIMEOUT = 3  # seconds


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    report = {"database": database_status(), "broker": broker_status(), "model": model_status()}
    healthy = report["database"]["ok"] and report["broker"]["ok"]
    report["status"] = (
        "ok" if healthy and report["model"]["ok"] else ("degraded" if healthy else "error")
    )
    return JsonResponse(report, status=200 if healthy else 503)


def database_status() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return {"ok": False, "vendor": connection.vendor, "error": str(exc).strip()[:300]}
    return {"ok": True, "vendor": connection.vendor}


def broker_status() -> dict[str, Any]:
    from genreweb.celery import app

    shown = redact(app.conf.broker_url)
    try:
        with app.connection_for_write(connect_timeout=BROKER_TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT)
            conn.default_channel  # noqa: B018 (opens a channel: the broker really answers)
    except Exception as exc:
        return {"ok": False, "url": shown, "error": str(exc).strip()[:300]}
    return {"ok": True, "url": shown}


def model_status() -> dict[str, Any]:
    """The pinned musicnn checkpoint and the genre head are installed (neither is loaded:
    the CNN's weights and eval constants would cost every web process tens of MB)."""
    from classifier.engine import registry
    from classifier.engine.errors import ModelError
    from classifier.models import Status, Track
    from classifier.services.active_model import head_path

    try:
        folder = registry.checkpoint_dir()
    except ModelError as exc:
        return {"ok": False, "error": str(exc)}
    missing = [name for name in registry.MUSICNN_SHA256 if not (folder / name).is_file()]
    if missing:
        return {"ok": False, "error": f"the musicnn checkpoint lacks {', '.join(missing)}"}
    head = head_path()
    if not head.is_file():
        return {"ok": False, "error": f"the genre head {head.name} is missing"}
    try:
        latest = (
            Track.objects.filter(status=Status.DONE)
            .order_by("-analysed_at")
            .values_list("model_version", flat=True)
            .first()
        )
    except Exception:  # the database is reported on its own
        latest = None
    return {
        "ok": True,
        "head": head.name,
        "last_model_version": latest,
        "min_confidence": settings.GENREWEB_MIN_CONFIDENCE,
    }


def redact(url: str) -> str:
    """The URL without its password, fit to show."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
