"""The recommender's settings: a Django setting of the same name wins, else the environment.

Every name is listed in recommender/README.md. Reading them here (not in genreweb/settings.py)
keeps the app self-contained; tests override them with pytest-django's `settings` fixture.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from genreweb.env import env_float, env_int, env_list, env_str


def _setting(name: str, read: Any) -> Any:
    value = getattr(settings, name, None)
    return read() if value is None else value


def spotify_client_id() -> str:
    return _setting("SPOTIFY_CLIENT_ID", lambda: env_str("SPOTIFY_CLIENT_ID"))


def spotify_client_secret() -> str:
    return _setting("SPOTIFY_CLIENT_SECRET", lambda: env_str("SPOTIFY_CLIENT_SECRET"))


def spotify_api_url() -> str:
    url = _setting(
        "SPOTIFY_API_URL", lambda: env_str("SPOTIFY_API_URL", "https://api.spotify.com/v1/")
    )
    return url if url.endswith("/") else url + "/"


def spotify_token_url() -> str:
    return _setting(
        "SPOTIFY_TOKEN_URL",
        lambda: env_str("SPOTIFY_TOKEN_URL", "https://accounts.spotify.com/api/token"),
    )


def spotify_market() -> str:
    # Needed for playable results with client credentials, which carry no user country.
    return _setting("SPOTIFY_MARKET", lambda: env_str("SPOTIFY_MARKET", "US"))


def spotify_page_size() -> int:
    # Search now allows at most 10 results a page for new apps (February 2026).
    return _setting("SPOTIFY_PAGE_SIZE", lambda: env_int("SPOTIFY_PAGE_SIZE", 10, minimum=1))


def spotify_max_retries() -> int:
    return _setting("SPOTIFY_MAX_RETRIES", lambda: env_int("SPOTIFY_MAX_RETRIES", 5, minimum=0))


def spotify_max_retry_after() -> float:
    """The longest Retry-After the build waits out; a longer one stops it (run it again later)."""
    return _setting("SPOTIFY_MAX_RETRY_AFTER", lambda: env_float("SPOTIFY_MAX_RETRY_AFTER", 120.0))


def spotify_timeout() -> float:
    return _setting("SPOTIFY_TIMEOUT", lambda: env_float("SPOTIFY_TIMEOUT", 15.0))


def sample_search() -> str:
    """Where yt-dlp looks for a track: a template with {query} (and {count}).

    Production searches YouTube; tests point it at a local page yt-dlp's generic extractor
    reads (an RSS feed of candidate audio files).
    """
    return _setting(
        "RECOMMENDER_SAMPLE_SEARCH",
        lambda: env_str("RECOMMENDER_SAMPLE_SEARCH", "ytsearch{count}:{query}"),
    )


def sample_candidates() -> int:
    return _setting(
        "RECOMMENDER_SAMPLE_CANDIDATES",
        lambda: env_int("RECOMMENDER_SAMPLE_CANDIDATES", 5, minimum=1),
    )


def sample_seconds() -> float:
    return _setting(
        "RECOMMENDER_SAMPLE_SECONDS", lambda: env_float("RECOMMENDER_SAMPLE_SECONDS", 30.0)
    )


def sample_min_match() -> float:
    """Candidates scoring below this (0..1) are not taken: the track fails instead."""
    return _setting(
        "RECOMMENDER_SAMPLE_MIN_MATCH", lambda: env_float("RECOMMENDER_SAMPLE_MIN_MATCH", 0.45)
    )


def ytdlp_js_runtimes() -> list[str]:
    """yt-dlp's JavaScript runtimes for YouTube, e.g. deno (yt-dlp's default) or node."""
    return _setting(
        "RECOMMENDER_YTDLP_JS_RUNTIMES", lambda: env_list("RECOMMENDER_YTDLP_JS_RUNTIMES", ["deno"])
    )


def ytdlp_remote_components() -> list[str]:
    """yt-dlp's challenge solver scripts to fetch when the yt-dlp-ejs package is absent,
    e.g. ejs:github (nothing is fetched by default)."""
    return _setting(
        "RECOMMENDER_YTDLP_REMOTE_COMPONENTS",
        lambda: env_list("RECOMMENDER_YTDLP_REMOTE_COMPONENTS", []),
    )


def ytdlp_cookies() -> str:
    return _setting("RECOMMENDER_YTDLP_COOKIES", lambda: env_str("RECOMMENDER_YTDLP_COOKIES"))


def ffmpeg_location() -> str:
    """An explicit ffmpeg binary; empty means the system's, else imageio-ffmpeg's."""
    return _setting("RECOMMENDER_FFMPEG", lambda: env_str("RECOMMENDER_FFMPEG"))


def index_dir() -> Path:
    default = Path(settings.DATA_DIR) / "index"
    return Path(
        _setting("RECOMMENDER_INDEX_DIR", lambda: env_str("RECOMMENDER_INDEX_DIR") or default)
    )


def library_index_dir() -> Path:
    """Where each user's own library is indexed for "songs like this" (one folder a user)."""
    default = Path(settings.DATA_DIR) / "library-index"
    return Path(
        _setting(
            "RECOMMENDER_LIBRARY_INDEX_DIR",
            lambda: env_str("RECOMMENDER_LIBRARY_INDEX_DIR") or default,
        )
    )


def exact_below() -> int:
    """A genre with fewer catalog tracks than this is searched exactly, without HNSW."""
    return _setting(
        "RECOMMENDER_EXACT_BELOW", lambda: env_int("RECOMMENDER_EXACT_BELOW", 20_000, minimum=0)
    )


def claim_lease() -> int:
    """Seconds after which a step's claim on a track counts as lost (its worker died)."""
    return _setting(
        "RECOMMENDER_CLAIM_LEASE", lambda: env_int("RECOMMENDER_CLAIM_LEASE", 30 * 60, minimum=10)
    )


def max_attempts() -> int:
    return _setting(
        "RECOMMENDER_MAX_ATTEMPTS", lambda: env_int("RECOMMENDER_MAX_ATTEMPTS", 4, minimum=1)
    )


def retry_backoff() -> float:
    """Seconds before the first retry of a network failure; doubled each time (max 1 h)."""
    return _setting(
        "RECOMMENDER_RETRY_BACKOFF", lambda: env_float("RECOMMENDER_RETRY_BACKOFF", 30.0)
    )
