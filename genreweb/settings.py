"""Genreweb settings, all read from environment variables (see README: Configuration).

With nothing set the app runs on SQLite and a filesystem Celery broker, so `migrate` and
`runserver` just work. DATABASE_URL and CELERY_BROKER_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from genreweb.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_path,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# Everything the app writes (database, uploads, converted weights, broker queue) lives here.
DATA_DIR = env_path("GENREWEB_DATA_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", default=False)
# Production mode: HTTPS-only cookies, HSTS, a real secret key; passes `check --deploy`.
PRODUCTION = env_bool("GENREWEB_PRODUCTION", default=False)
SECRET_KEY = env_str("SECRET_KEY", "")
if PRODUCTION and len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("GENREWEB_PRODUCTION needs SECRET_KEY: 50 or more random characters")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("GENREWEB_PRODUCTION and DEBUG cannot both be on")
if not SECRET_KEY:
    # Only acceptable for local use; production mode refuses to start without one.
    SECRET_KEY = "genreweb-insecure-development-key-change-me"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here rather than a CDN
    "axes",
    "genreweb.accounts",
    "classifier",
    "classifier.curation",
    "recommender",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before anything reads a body (the CSRF check reads POST in its process_view): a
    # body over what this client may send is answered 413 unread.
    "genreweb.uploads.RequestBodyLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "genreweb.urls"
WSGI_APPLICATION = "genreweb.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "genreweb.accounts.context_processors.signup",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'genreweb.sqlite3'}")
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The web server and the worker write at once: wait for the lock, take it up front.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    if DATABASES["default"]["NAME"] != ":memory:":
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", DATA_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Without collectstatic (make run) WhiteNoise serves straight from the app folders.
WHITENOISE_USE_FINDERS = not PRODUCTION
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns where it is missing
if PRODUCTION:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
# Uploaded tracks live here, one folder per user; they are served only through views
# that check the owner, never as public media.
MEDIA_ROOT = env_path("MEDIA_ROOT", DATA_DIR / "media")
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Behind a reverse proxy (docker-compose's Caddy) that sets X-Forwarded-Proto and
# X-Forwarded-For itself; otherwise clients could forge both headers.
BEHIND_PROXY = env_bool("GENREWEB_BEHIND_PROXY", default=False)

# --- accounts ---------------------------------------------------------------------------
# open: anyone may sign up; invite: only with an invitation link made by staff; closed: no one.
GENREWEB_SIGNUP = env_choice("GENREWEB_SIGNUP", "open", ("open", "invite", "closed"))
GENREWEB_INVITE_DAYS = env_int("GENREWEB_INVITE_DAYS", 7, minimum=1)

# --- failed logins (django-axes) --------------------------------------------------------
# Login page, admin login and POST /api/token/ all authenticate through django.contrib.auth,
# so one record of failures covers them. Locked out: an account after this many failures
# (from anywhere), an address after this many (on any accounts), for the lockout's minutes.
GENREWEB_LOGIN_FAILURES_PER_ACCOUNT = env_int("GENREWEB_LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
GENREWEB_LOGIN_FAILURES_PER_ADDRESS = env_int("GENREWEB_LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
GENREWEB_LOGIN_LOCKOUT_MINUTES = env_int("GENREWEB_LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AXES_HANDLER = "genreweb.logins.LoginAttemptsHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_FAILURE_LIMIT = GENREWEB_LOGIN_FAILURES_PER_ACCOUNT
AXES_COOLOFF_TIME = timedelta(minutes=GENREWEB_LOGIN_LOCKOUT_MINUTES)
# A successful login forgets that account's failures (not the address's on other accounts).
AXES_RESET_ON_SUCCESS = True
# Tries made while locked out do not prolong the lockout.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "genreweb.logins.lockout_response"
AXES_CLIENT_IP_CALLABLE = "genreweb.logins.client_address"
AXES_VERBOSE = False  # no banner on every start; failures and lockouts are still logged

# --- uploads ----------------------------------------------------------------------------
GENREWEB_MAX_UPLOAD_MB = env_int("GENREWEB_MAX_UPLOAD_MB", 200, minimum=1)
# The largest body a client that is not logged in may send (a login form is far smaller).
GENREWEB_ANONYMOUS_MAX_KB = env_int("GENREWEB_ANONYMOUS_MAX_KB", 64, minimum=1)
# Every upload goes to a temporary file, so the audio check and hashing read it from disk.
# The first handler stops any upload as soon as it passes what this client may send; the
# second locks its temporary file while its request lives, so the hourly clean-up of upload
# files abandoned by a dead web worker never takes one in use.
FILE_UPLOAD_HANDLERS = [
    "genreweb.uploads.BodyCapUploadHandler",
    "classifier.uploadhandlers.LockedTemporaryFileUploadHandler",
]
# Where those temporary files go (None: the system's temporary folder).
FILE_UPLOAD_TEMP_DIR = None
if env_str("FILE_UPLOAD_TEMP_DIR"):
    FILE_UPLOAD_TEMP_DIR = str(env_path("FILE_UPLOAD_TEMP_DIR", DATA_DIR))
    Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
GENREWEB_PAGE_SIZE = env_int("GENREWEB_PAGE_SIZE", 25, minimum=1)

# --- the genre engine -------------------------------------------------------------------
# Converted musicnn weights are cached here (safetensors), next to trained heads.
GENREWEB_MODEL_DIR = env_path("GENREWEB_MODEL_DIR", DATA_DIR / "models")
GENREWEB_MIN_CONFIDENCE = env_float("GENREWEB_MIN_CONFIDENCE", 0.35)
if not 0.0 <= GENREWEB_MIN_CONFIDENCE <= 1.0:
    raise ImproperlyConfigured(
        f"GENREWEB_MIN_CONFIDENCE must be between 0 and 1, not {GENREWEB_MIN_CONFIDENCE}"
    )
# What of a verdict goes into a file's genre tag: top-level genres only unless
# GENREWEB_TAG_STYLES ("Electronic; House"), at most GENREWEB_TAG_MAX values, each at or
# above GENREWEB_TAG_MIN_CONFIDENCE (default: GENREWEB_MIN_CONFIDENCE).
GENREWEB_TAG_STYLES = env_bool("GENREWEB_TAG_STYLES", False)
GENREWEB_TAG_MAX = env_int("GENREWEB_TAG_MAX", 3, minimum=1)
GENREWEB_TAG_MIN_CONFIDENCE = env_float("GENREWEB_TAG_MIN_CONFIDENCE", GENREWEB_MIN_CONFIDENCE)
if not 0.0 <= GENREWEB_TAG_MIN_CONFIDENCE <= 1.0:
    raise ImproperlyConfigured(
        f"GENREWEB_TAG_MIN_CONFIDENCE must be between 0 and 1, not {GENREWEB_TAG_MIN_CONFIDENCE}"
    )
# Analyses a worker runs at once (its pool processes), and the CPU threads in each (0: one
# per core; the variable keeps the name it had when the CNN ran on torch): by default one
# single-threaded process per core, the fastest of the settings measured with
# bench/pipeline.py (README, "Speed"). rundev and docker-compose take both from here;
# `celery worker --concurrency N` overrides the first.
GENREWEB_WORKER_CONCURRENCY = env_int("GENREWEB_WORKER_CONCURRENCY", os.cpu_count() or 1, minimum=1)
CELERY_WORKER_CONCURRENCY = GENREWEB_WORKER_CONCURRENCY
GENREWEB_TORCH_THREADS = env_int(
    "GENREWEB_TORCH_THREADS",
    max(1, (os.cpu_count() or 1) // GENREWEB_WORKER_CONCURRENCY),
    minimum=0,
)
# Audio far from any music the model learned from (speech, noise, test tones) comes out
# uncertain; off: every track gets the head's genres, however unlike music it sounds.
GENREWEB_NOVELTY_CHECK = env_bool("GENREWEB_NOVELTY_CHECK", True)
# The genre head when staff have promoted none ("": the bundled head).
GENREWEB_HEAD_PATH = env_str("GENREWEB_HEAD_PATH", "")

# --- Celery -----------------------------------------------------------------------------
# The cache keeps the API's request counts (throttling): per process by default; with
# several gunicorn workers, point it at Redis so the limits hold for the whole site.
GENREWEB_CACHE_URL = env_str("GENREWEB_CACHE_URL", "")
if GENREWEB_CACHE_URL and not GENREWEB_CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(
        f"GENREWEB_CACHE_URL must be redis:// or rediss:// (or unset), not {GENREWEB_CACHE_URL!r}"
    )
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": GENREWEB_CACHE_URL,
    }
    if GENREWEB_CACHE_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if not CELERY_BROKER_URL.startswith(
    ("filesystem://", "redis://", "rediss://", "amqp://", "memory://")
):
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must be filesystem://, redis://, rediss://, "
        f"amqp:// or memory://, not {CELERY_BROKER_URL!r}"
    )
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A message is acknowledged only once its task has finished, and handed back to the
# queue when the worker running it dies, so a track is never lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# One analysis may take this long; past it the task is killed and the track marked failed.
GENREWEB_TASK_TIME_LIMIT = env_int("GENREWEB_TASK_TIME_LIMIT", 30 * 60, minimum=60)
CELERY_TASK_TIME_LIMIT = GENREWEB_TASK_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = GENREWEB_TASK_TIME_LIMIT - 30
# A track still "processing" this long after it was claimed lost its worker: queue it again.
GENREWEB_STALE_AFTER = env_int(
    "GENREWEB_STALE_AFTER", GENREWEB_TASK_TIME_LIMIT + 5 * 60, minimum=60
)
# A worker touches its track's claim every third of this while it analyses; a claim silent
# for this long lost its worker, and is queued again (by the sweep, or a user's re-analyse).
GENREWEB_HEARTBEAT_TIMEOUT = env_int("GENREWEB_HEARTBEAT_TIMEOUT", 90, minimum=3)
GENREWEB_SWEEP_EVERY = env_int("GENREWEB_SWEEP_EVERY", 60, minimum=1)
# Temporary files left by killed writers: uploads' (after an hour), tags' (a few minutes).
GENREWEB_CLEANUP_EVERY = env_int("GENREWEB_CLEANUP_EVERY", 60 * 60, minimum=60)
# Library folders are scanned again this often (new, changed, moved and vanished files).
GENREWEB_RESCAN_EVERY = env_int("GENREWEB_RESCAN_EVERY", 60 * 60, minimum=60)
CELERY_BEAT_SCHEDULE = {
    "rescan-libraries": {
        "task": "classifier.rescan_libraries",
        "schedule": float(GENREWEB_RESCAN_EVERY),
    },
    "requeue-stale-tracks": {
        "task": "classifier.requeue_stale_tracks",
        "schedule": float(GENREWEB_SWEEP_EVERY),
    },
    "refresh-library-indexes": {
        "task": "recommender.refresh_library_indexes",
        "schedule": float(GENREWEB_SWEEP_EVERY),
    },
    "remove-stale-temporaries": {
        "task": "classifier.remove_stale_temporaries",
        "schedule": float(GENREWEB_CLEANUP_EVERY),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The embedded broker: messages are files in one folder shared by web and worker.
    _QUEUE_DIR = str(DATA_DIR / "broker" / "queue")
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": _QUEUE_DIR,
        "data_folder_out": _QUEUE_DIR,
        "processed_folder": str(DATA_DIR / "broker" / "processed"),
        "control_folder": str(DATA_DIR / "broker" / "control"),
        "store_processed": False,
    }
else:
    # Redis hands an unacknowledged message to another worker after this long: it must
    # outlast the longest task, or a slow analysis would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": GENREWEB_STALE_AFTER + 60}

# --- the API ----------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an unauthenticated client is answered 401 with `WWW-Authenticate: Token`.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": GENREWEB_PAGE_SIZE,
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "genreweb.uploads.MultiPartParser",
    ],
    # Too many requests are answered 429 with Retry-After; POST /api/token/ has its own,
    # strict scope on top of the failed-login lockout.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.ScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("GENREWEB_API_RATE_ANON", "60/minute"),
        "user": env_rate("GENREWEB_API_RATE_USER", "600/minute"),
        "token": env_rate("GENREWEB_API_RATE_TOKEN", "10/minute"),
    },
    # The client's address: the connection's, or the last X-Forwarded-For entry, which
    # the proxy in front wrote (0: never trust the header).
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Genreweb API",
    "DESCRIPTION": "Upload music, read the genres Genreweb found, download tagged files.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ loads Swagger UI from this server (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two choice sets are called "source": where a track comes from, where evidence comes from.
    "ENUM_NAME_OVERRIDES": {
        "TrackSourceEnum": "classifier.models.Source",
        "EvidenceSourceEnum": ["file_tag", "album", "artist", "catalog"],
    },
}

# --- production -------------------------------------------------------------------------
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
if BEHIND_PROXY:
    # Only behind a proxy that sets this header itself; otherwise clients could forge it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    },
}
