"""Spotify Web API access for the catalog: client credentials, single-id endpoints only.

What a new app may still call (after the November 2024 and February 2026 changes): search
(at most 10 results a page), playlists/{id}/items, albums/{id} and albums/{id}/tracks,
artists/{id} (its `genres` may be missing or empty), artists/{id}/albums and tracks/{id}.
Never recommendations, audio-features, related-artists, top-tracks, preview URLs or the
multi-id `?ids=` batch endpoints.

Which layer handles what:
- spotipy builds requests and parses answers; its own urllib3 Retry is switched off (it would
  sleep for any Retry-After, however long, and hide the header behind a RetryError).
- `SpotifyClient.call` retries here: HTTP 429 waits for its Retry-After (with backoff for a
  repeated one) up to SPOTIFY_MAX_RETRY_AFTER, beyond which the build stops (RateLimited) and a
  later run goes on; 5xx, connection errors and timeouts back off exponentially, at most
  SPOTIFY_MAX_RETRIES times; any other 4xx is final (SpotifyError).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.exceptions import SpotifyException
from spotipy.oauth2 import SpotifyClientCredentials

from recommender import conf

log = logging.getLogger(__name__)
T = TypeVar("T")


class SpotifyError(Exception):
    """Spotify refused a request (a 4xx other than 429), or kept failing past the retries."""


class SpotifyNotConfigured(SpotifyError):
    """SPOTIFY_CLIENT_ID / SPOTIFY_CLIENT_SECRET are not set."""


class RateLimited(SpotifyError):
    """Spotify asked to wait longer than the cap: stop now, run the build again later."""


@dataclass(frozen=True)
class TrackInfo:
    """What the catalog keeps of a Spotify track."""

    spotify_id: str
    title: str
    artists: list[str]
    artist_ids: list[str]
    album: str = ""
    album_id: str = ""
    release_year: int | None = None
    duration_ms: int | None = None
    spotify_url: str = ""
    cover_url: str = ""


class _ClientCredentials(SpotifyClientCredentials):
    """Client credentials against a configurable token URL, its errors left to the retry layer.

    spotipy reads the token URL from `self.OAUTH_TOKEN_URL`, so an instance attribute is the
    supported way to point it elsewhere. Its own error handling drops the HTTP status and the
    Retry-After header; here they travel in a SpotifyException like every other call's.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        token_url: str,
        session: requests.Session,
        timeout: float,
    ) -> None:
        super().__init__(
            client_id,
            client_secret,
            requests_session=session,
            requests_timeout=timeout,
            cache_handler=MemoryCacheHandler(),
        )
        self.OAUTH_TOKEN_URL = token_url

    def _request_access_token(self) -> dict[str, Any]:
        response = self._session.post(
            self.OAUTH_TOKEN_URL,
            data={"grant_type": "client_credentials"},
            auth=(self.client_id, self.client_secret),
            timeout=self.requests_timeout,
        )
        if response.status_code >= 400:
            raise SpotifyException(
                response.status_code,
                -1,
                f"{self.OAUTH_TOKEN_URL}: {response.text[:200]}",
                headers=response.headers,
            )
        return response.json()


@dataclass
class RetryPolicy:
    max_retries: int = 5
    max_retry_after: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    waits: list[float] = field(default_factory=list)  # every wait taken, for the progress log

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2**attempt) * random.uniform(1, 1.25)

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sleep(seconds)


def retry_after_seconds(headers: Any) -> float | None:
    raw = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None  # an HTTP date: rare from Spotify; fall back on backoff


class SpotifyClient:
    """spotipy, pointed at SPOTIFY_API_URL / SPOTIFY_TOKEN_URL, with our retry policy."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_url: str,
        token_url: str,
        market: str = "US",
        page_size: int = 10,
        timeout: float = 15.0,
        policy: RetryPolicy | None = None,
    ) -> None:
        if not client_id or not client_secret:
            raise SpotifyNotConfigured(
                "Set SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET (a Spotify app's client "
                "credentials) to build the catalog."
            )
        # A plain session: no urllib3 Retry adapter, so every 429/5xx reaches `call`.
        session = requests.Session()
        auth = _ClientCredentials(client_id, client_secret, token_url, session, timeout)
        self.sp = spotipy.Spotify(
            auth_manager=auth,
            requests_session=session,
            requests_timeout=timeout,
            retries=0,
            status_retries=0,
        )
        self.sp.prefix = api_url if api_url.endswith("/") else api_url + "/"
        self.market = market or None
        self.page_size = page_size
        self.policy = policy or RetryPolicy()
        self.requests = 0

    @classmethod
    def from_settings(cls, sleep: Callable[[float], None] = time.sleep) -> SpotifyClient:
        policy = RetryPolicy(
            max_retries=conf.spotify_max_retries(),
            max_retry_after=conf.spotify_max_retry_after(),
            sleep=sleep,
        )
        return cls(
            conf.spotify_client_id(),
            conf.spotify_client_secret(),
            api_url=conf.spotify_api_url(),
            token_url=conf.spotify_token_url(),
            market=conf.spotify_market(),
            page_size=conf.spotify_page_size(),
            timeout=conf.spotify_timeout(),
            policy=policy,
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` with 429, 5xx and network failures retried (see module doc)."""
        policy = self.policy
        for attempt in range(policy.max_retries + 1):
            self.requests += 1
            try:
                return fn(*args, **kwargs)
            except SpotifyException as exc:
                wait = self._wait_for(exc, attempt)
                problem = f"HTTP {exc.http_status}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                wait = policy.backoff(attempt)
                problem = type(exc).__name__
            if attempt == policy.max_retries:
                break
            log.warning(
                "Spotify: %s, waiting %.1f s (retry %d of %d)",
                problem,
                wait,
                attempt + 1,
                policy.max_retries,
            )
            policy.wait(wait)
        if problem == "HTTP 429":
            raise RateLimited(
                f"Spotify kept answering 429 after {policy.max_retries} retries; "
                "run the build again later: it goes on where it stopped."
            )
        raise SpotifyError(
            f"Spotify failed {policy.max_retries + 1} times ({problem}); "
            "run the build again later: it goes on where it stopped."
        )

    def _wait_for(self, exc: SpotifyException, attempt: int) -> float:
        status = exc.http_status
        if status == 429:
            asked = retry_after_seconds(exc.headers)
            cap = self.policy.max_retry_after
            if asked is not None and asked > cap:
                raise RateLimited(
                    f"Spotify asks to wait {asked:.0f} s (Retry-After), more than "
                    f"SPOTIFY_MAX_RETRY_AFTER={cap:.0f} s; stopping. "
                    "Run the build again later: it goes on where it stopped."
                ) from exc
            if asked is None:
                return min(self.policy.backoff(attempt), cap)
            # Waiting Retry-After honours it; a repeated 429 backs off beyond it.
            return asked if attempt == 0 else min(max(asked, self.policy.backoff(attempt)), cap)
        if status is not None and status >= 500:
            return self.policy.backoff(attempt)
        raise SpotifyError(f"Spotify refused the request: HTTP {status}: {exc.msg}") from exc

    # --- the endpoints the catalog uses (each one request) -------------------------------

    def search_tracks(self, query: str, offset: int, limit: int) -> dict[str, Any]:
        result = self.call(
            self.sp.search, query, limit=limit, offset=offset, type="track", market=self.market
        )
        return result.get("tracks") or {}

    def playlist_items(self, playlist_id: str, offset: int, limit: int) -> dict[str, Any]:
        return self.call(
            self.sp.playlist_items,
            playlist_id,
            limit=limit,
            offset=offset,
            market=self.market,
            additional_types=("track",),
        )

    def album(self, album_id: str) -> dict[str, Any]:
        return self.call(self.sp.album, album_id, market=self.market)

    def album_tracks(self, album_id: str, offset: int, limit: int) -> dict[str, Any]:
        return self.call(
            self.sp.album_tracks, album_id, limit=limit, offset=offset, market=self.market
        )

    def artist(self, artist_id: str) -> dict[str, Any]:
        return self.call(self.sp.artist, artist_id)

    def artist_albums(self, artist_id: str, offset: int, limit: int) -> dict[str, Any]:
        return self.call(
            self.sp.artist_albums,
            artist_id,
            include_groups="album,single",
            limit=limit,
            offset=offset,
        )

    def track(self, track_id: str) -> dict[str, Any]:
        return self.call(self.sp.track, track_id, market=self.market)


# --- parsing ---------------------------------------------------------------------------


def cover_url(images: list[dict[str, Any]] | None, target: int = 300) -> str:
    """The smallest image at least `target` px wide (the largest if none is), else ''."""
    images = [i for i in images or [] if i.get("url")]
    if not images:
        return ""
    big_enough = [i for i in images if (i.get("width") or 0) >= target]
    if big_enough:
        return min(big_enough, key=lambda i: i.get("width") or 0)["url"]
    return max(images, key=lambda i: i.get("width") or 0)["url"]


def release_year(release_date: str | None) -> int | None:
    head = (release_date or "")[:4]
    return int(head) if head.isdigit() and int(head) > 0 else None


def track_info(
    item: dict[str, Any] | None, album: dict[str, Any] | None = None
) -> TrackInfo | None:
    """A TrackInfo from a full or simplified track object (None for episodes, local files)."""
    if not item or item.get("type", "track") != "track" or not item.get("id"):
        return None
    if item.get("is_local"):
        return None
    album = item.get("album") or album or {}
    artists = [a for a in item.get("artists") or [] if a.get("name")]
    return TrackInfo(
        spotify_id=item["id"],
        title=(item.get("name") or "")[:500],
        artists=[a["name"] for a in artists],
        artist_ids=[a["id"] for a in artists if a.get("id")],
        album=(album.get("name") or "")[:500],
        album_id=album.get("id") or "",
        release_year=release_year(album.get("release_date")),
        duration_ms=item.get("duration_ms"),
        spotify_url=(item.get("external_urls") or {}).get("spotify", ""),
        cover_url=cover_url(album.get("images")),
    )


def playlist_track(entry: dict[str, Any]) -> dict[str, Any] | None:
    # Playlist items carry the track under "track"; newer answers may name it "item".
    return entry.get("item") or entry.get("track")


def album_context(album: dict[str, Any]) -> dict[str, Any]:
    """The album fields a simplified track lacks, small enough to keep in a seed's cursor."""
    return {
        "id": album.get("id", ""),
        "name": album.get("name", ""),
        "release_date": album.get("release_date", ""),
        "images": [
            {"url": i.get("url"), "width": i.get("width")} for i in album.get("images") or []
        ],
    }


def artist_genres(artist: dict[str, Any]) -> list[str]:
    """The artist's genres; [] where the field is missing, as it may be for new apps."""
    genres = artist.get("genres")
    return [g for g in genres if isinstance(g, str)] if isinstance(genres, list) else []


# --- seeds: one request at a time, resumable from a small JSON state ---------------------

ITEMS_PER_PAGE = 50  # playlists, albums and an artist's albums; search allows 10 (page_size)
SEARCH_MAX_OFFSET = 1000  # Spotify's search does not page past this
SEED_KINDS = ("search", "playlist", "album", "artist", "track")
_ID = re.compile(r"^[0-9A-Za-z]{10,40}$")


@dataclass
class Step:
    """What one request of a seed gave: its tracks, the state to go on from, and whether the
    seed has nothing more."""

    tracks: list[TrackInfo]
    state: dict[str, Any]
    exhausted: bool


def seed_id(kind: str, value: str) -> str:
    """The bare id of an id seed given as an id, a spotify: URI or an open.spotify.com link."""
    value = value.strip()
    if kind == "search":
        return value
    match = re.search(
        rf"(?:spotify:{kind}:|open\.spotify\.com/(?:intl-\w+/)?{kind}/)"
        r"([0-9A-Za-z]+)",
        value,
    )
    bare = match.group(1) if match else value
    if not _ID.match(bare):
        raise ValueError(f"{value!r} is not a Spotify {kind} id, URI or link")
    return bare


def advance(client: SpotifyClient, kind: str, value: str, state: dict[str, Any], want: int) -> Step:
    """Up to `want` more tracks of a seed, from where `state` left off (one or two requests)."""
    if kind == "search":
        return _paged(
            state,
            want,
            client.page_size,
            SEARCH_MAX_OFFSET,
            lambda offset, limit: client.search_tracks(value, offset, limit),
            lambda item: track_info(item),
        )
    if kind == "playlist":
        return _paged(
            state,
            want,
            ITEMS_PER_PAGE,
            None,
            lambda offset, limit: client.playlist_items(value, offset, limit),
            lambda entry: track_info(playlist_track(entry or {})),
        )
    if kind == "album":
        tracks, album_state = _album_step(client, value, state, want)
        return Step(tracks, album_state, _album_done(album_state))
    if kind == "artist":
        return _artist_step(client, value, state, want)
    if kind == "track":
        info = track_info(client.track(value))
        return Step([info] if info else [], {}, True)
    raise ValueError(f"unknown seed kind {kind!r}; use one of {', '.join(SEED_KINDS)}")


def _paged(
    state: dict[str, Any],
    want: int,
    page_max: int,
    max_offset: int | None,
    fetch: Callable[[int, int], dict[str, Any]],
    parse: Callable[[Any], TrackInfo | None],
) -> Step:
    offset = state.get("offset", 0)
    page = fetch(offset, max(1, min(page_max, want)))
    items = page.get("items") or []
    offset += len(items)
    total = page.get("total")
    exhausted = (
        not items
        or not page.get("next")
        or (total is not None and offset >= total)
        or (max_offset is not None and offset >= max_offset)
    )
    tracks = [t for t in map(parse, items) if t]
    return Step(tracks, {"offset": offset}, exhausted)


def _album_done(state: dict[str, Any]) -> bool:
    return "album" in state and state["offset"] >= state["total"]


def _album_step(
    client: SpotifyClient, album_id: str, state: dict[str, Any], want: int
) -> tuple[list[TrackInfo], dict[str, Any]]:
    if "album" not in state:
        # albums/{id} gives the cover and year, and the first page of tracks with them.
        album = client.album(album_id)
        context = album_context(album)
        page = album.get("tracks") or {}
        items = (page.get("items") or [])[:want]
        total = page.get("total", len(page.get("items") or []))
    else:
        context = state["album"]
        page = client.album_tracks(album_id, state["offset"], max(1, min(ITEMS_PER_PAGE, want)))
        items = page.get("items") or []
        total = page.get("total", state["total"]) if items else state["offset"]
    offset = state.get("offset", 0) + len(items)
    tracks = [t for t in (track_info(i, context) for i in items) if t]
    return tracks, {"album": context, "offset": offset, "total": total}


def _artist_step(client: SpotifyClient, artist_id: str, state: dict[str, Any], want: int) -> Step:
    # Top tracks are gone for new apps (February 2026): walk the artist's albums instead.
    state = {"albums_offset": 0, "albums_done": False, "queue": [], "current": None, **state}
    current = state["current"]
    if current is not None and not _album_done(current[1]):
        tracks, album_state = _album_step(client, current[0], current[1], want)
        state["current"] = [current[0], album_state]
    elif state["queue"]:
        album_id = state["queue"].pop(0)
        tracks, album_state = _album_step(client, album_id, {}, want)
        state["current"] = [album_id, album_state]
    elif not state["albums_done"]:
        page = client.artist_albums(artist_id, state["albums_offset"], ITEMS_PER_PAGE)
        items = page.get("items") or []
        state["queue"] = [a["id"] for a in items if a and a.get("id")]
        state["albums_offset"] += len(items)
        state["albums_done"] = not items or not page.get("next")
        tracks = []
    else:
        return Step([], state, True)
    current = state["current"]
    exhausted = (
        state["albums_done"] and not state["queue"] and (current is None or _album_done(current[1]))
    )
    return Step(tracks, state, exhausted)
