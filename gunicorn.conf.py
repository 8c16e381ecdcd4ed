"""gunicorn's settings for Genreweb: `gunicorn genreweb.wsgi -c gunicorn.conf.py`
(docker-compose's `web` service and the Dockerfile run exactly that).

gthread workers: each worker serves GENREWEB_WEB_THREADS requests at once, and waits for a
new connection's first bytes on its poller rather than in a thread. A slow client (an
upload over a bad line, headers sent a byte at a time) holds one thread, not a whole
worker: with the old three sync workers, three slow clients took the site down. In
docker-compose, Caddy in front also reads each request's headers itself (10 s at most).
"""

import os


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"{name} must be a whole number of at least {minimum}, not {raw!r}")
    return int(raw)


bind = os.environ.get("GENREWEB_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = _int("GENREWEB_WEB_WORKERS", 2)
threads = _int("GENREWEB_WEB_THREADS", 16)
# A worker whose main loop is silent this long is restarted (requests run in threads, so
# a long upload or download does not count against it).
timeout = _int("GENREWEB_WEB_TIMEOUT", 120)
graceful_timeout = 30
# Idle kept-alive connections wait on the poller, and are closed after this many seconds.
keepalive = 5
# Request line and headers no larger than a browser's; bodies are limited by Django.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = "-"
