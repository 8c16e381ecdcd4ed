"""Local HTTP servers at the network boundary: a Spotify Web API stand-in and a media site.

SpotifyStandIn speaks the shape of today's Spotify Web API for a new app: the client
credentials token endpoint, search (at most 10 a page), playlists/{id}/items, albums/{id},
albums/{id}/tracks, artists/{id} (genres present, empty or missing), artists/{id}/albums and
tracks/{id}, all paged with absolute `next` links. The endpoints removed for new apps answer
403. Faults are scripted per path: 429 with Retry-After, 5xx, or a dropped connection.

MediaStandIn is a site yt-dlp's generic extractor understands: /search.rss?q=... is an RSS
feed of candidates (title, itunes:duration, enclosure) and /audio/<name> serves real audio
files with HTTP Range support, as a video site's CDN would.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape

REMOVED = (
    r"^/v1/recommendations",
    r"^/v1/audio-features",
    r"^/v1/audio-analysis",
    r"^/v1/artists/[^/]+/related-artists",
    r"^/v1/artists/[^/]+/top-tracks",
    r"^/v1/playlists/[^/]+/tracks",
    r"^/v1/browse/",
    r"^/v1/(tracks|albums|artists)$",
)


@dataclass
class Logged:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


class _Server:
    """A threaded HTTP server on a free port whose requests go to `self.handle`."""

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner._dispatch(self, "GET")

            def do_HEAD(self) -> None:
                owner._dispatch(self, "HEAD")

            def do_POST(self) -> None:
                owner._dispatch(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.log: list[Logged] = []
        self.faults: list[tuple[str, int, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self) -> _Server:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def fail(self, path_pattern: str, *faults: tuple[int, dict[str, str]]) -> None:
        """Answer the next requests whose path matches with these (status, headers), in turn.

        Status 0 drops the connection without an answer (a network failure).
        """
        with self._lock:
            self.faults += [(path_pattern, status, headers) for status, headers in faults]

    def requests(self, pattern: str = "", method: str | None = None) -> list[Logged]:
        return [
            r
            for r in self.log
            if re.search(pattern, r.path) and (method is None or r.method == method)
        ]

    def _take_fault(self, path: str) -> tuple[int, dict[str, str]] | None:
        with self._lock:
            for i, (pattern, status, headers) in enumerate(self.faults):
                if re.search(pattern, path):
                    del self.faults[i]
                    return status, headers
        return None

    def _dispatch(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        entry = Logged(method, parts.path, query, dict(request.headers))
        with self._lock:
            self.log.append(entry)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        fault = self._take_fault(parts.path)
        if fault is not None:
            status, headers = fault
            entry.status = status
            if status == 0:
                request.close_connection = True
                request.connection.shutdown(2)  # no answer at all
                return
            payload = json.dumps({"error": {"status": status, "message": "scripted"}}).encode()
            self._send(request, status, payload, "application/json", headers)
            return
        status, payload, content_type, headers = self.handle(
            method, parts.path, query, request.headers, body
        )
        entry.status = status
        self._send(request, status, payload, content_type, headers, head=method == "HEAD")

    @staticmethod
    def _send(
        request: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        head: bool = False,
    ) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                request.send_header(key, value)
            request.end_headers()
            if not head:
                request.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client read what it needed and hung up (ffmpeg does)

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, bytes, str, dict[str, str]]:
        raise NotImplementedError


# --- Spotify ---------------------------------------------------------------------------------


@dataclass
class Artist:
    id: str
    name: str
    genres: list[str] | None  # None: the field is missing from the answer


@dataclass
class Album:
    id: str
    name: str
    release_date: str
    artists: list[Artist]
    tracks: list[Track] = field(default_factory=list)


@dataclass
class Track:
    id: str
    name: str
    duration_ms: int
    artists: list[Artist]
    album: Album


_ids = itertools.count(1)


def spotify_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}".ljust(22, "x")[:22]


class SpotifyStandIn(_Server):
    CLIENT_ID = "test-client"
    CLIENT_SECRET = "test-secret"
    SEARCH_LIMIT = 10
    PAGE_LIMIT = 50

    def __init__(self, embedded_tracks: int = 50) -> None:
        super().__init__()
        self.artists: dict[str, Artist] = {}
        self.albums: dict[str, Album] = {}
        self.tracks: dict[str, Track] = {}
        self.playlists: dict[str, list[str]] = {}
        self.tokens: set[str] = set()
        self.embedded_tracks = embedded_tracks

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1/"

    @property
    def token_url(self) -> str:
        return f"{self.url}/api/token"

    # --- building the catalog --------------------------------------------------------------

    def artist(self, name: str, genres: list[str] | None = None) -> Artist:
        artist = Artist(spotify_id("ar"), name, genres)
        self.artists[artist.id] = artist
        return artist

    def album(
        self,
        artist: Artist,
        name: str,
        songs: list[tuple[str, float]],
        release_date: str = "2001-05-14",
    ) -> Album:
        album = Album(spotify_id("al"), name, release_date, [artist])
        self.albums[album.id] = album
        for title, seconds in songs:
            track = Track(spotify_id("tr"), title, int(seconds * 1000), [artist], album)
            album.tracks.append(track)
            self.tracks[track.id] = track
        return album

    def playlist(self, tracks: list[Track]) -> str:
        playlist_id = spotify_id("pl")
        self.playlists[playlist_id] = [t.id for t in tracks]
        return playlist_id

    # --- JSON shapes ---------------------------------------------------------------------

    def _artist_json(self, artist: Artist, full: bool = False) -> dict[str, Any]:
        data = {
            "id": artist.id,
            "name": artist.name,
            "type": "artist",
            "uri": f"spotify:artist:{artist.id}",
            "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist.id}"},
        }
        if full:
            data["images"] = []
            if artist.genres is not None:
                data["genres"] = artist.genres
        return data

    def _album_json(self, album: Album, full: bool = False) -> dict[str, Any]:
        data = {
            "id": album.id,
            "name": album.name,
            "type": "album",
            "album_type": "album",
            "release_date": album.release_date,
            "release_date_precision": "day",
            "total_tracks": len(album.tracks),
            "artists": [self._artist_json(a) for a in album.artists],
            "images": [
                {"url": f"{self.url}/covers/{album.id}-{w}.jpg", "width": w, "height": w}
                for w in (640, 300, 64)
            ],
            "external_urls": {"spotify": f"https://open.spotify.com/album/{album.id}"},
        }
        if full:
            items = [self._track_json(t, simple=True) for t in album.tracks]
            data["tracks"] = self._page(
                f"albums/{album.id}/tracks", items, 0, self.embedded_tracks, {}
            )
        return data

    def _track_json(self, track: Track, simple: bool = False) -> dict[str, Any]:
        # No preview_url: it is gone for new apps.
        data = {
            "id": track.id,
            "name": track.name,
            "type": "track",
            "duration_ms": track.duration_ms,
            "explicit": False,
            "is_local": False,
            "track_number": track.album.tracks.index(track) + 1,
            "disc_number": 1,
            "uri": f"spotify:track:{track.id}",
            "artists": [self._artist_json(a) for a in track.artists],
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track.id}"},
        }
        if not simple:
            data["album"] = self._album_json(track.album)
        return data

    def _page(
        self, path: str, items: list[Any], offset: int, limit: int, params: dict[str, str]
    ) -> dict[str, Any]:
        def link(start: int) -> str:
            return f"{self.url}/v1/{path}?{urlencode({**params, 'offset': start, 'limit': limit})}"

        chunk = items[offset : offset + limit]
        more = offset + limit < len(items)
        return {
            "href": link(offset),
            "items": chunk,
            "limit": limit,
            "offset": offset,
            "total": len(items),
            "next": link(offset + limit) if more else None,
            "previous": link(max(0, offset - limit)) if offset else None,
        }

    # --- requests -----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if path == "/api/token":
            return self._token(method, headers, body)
        if not path.startswith("/v1/"):
            return self._json(404, {"error": {"status": 404, "message": "Not found"}})
        if headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
            return self._json(401, {"error": {"status": 401, "message": "No token provided"}})
        if any(re.search(p, path) for p in REMOVED) or "ids" in query:
            return self._json(403, {"error": {"status": 403, "message": "Forbidden"}})
        try:
            return self._json(200, self._route(path, query))
        except KeyError:
            return self._json(404, {"error": {"status": 404, "message": "Resource not found"}})
        except ValueError as exc:
            return self._json(400, {"error": {"status": 400, "message": str(exc)}})

    def _token(
        self, method: str, headers: Any, body: bytes
    ) -> tuple[int, bytes, str, dict[str, str]]:
        expected = base64.b64encode(f"{self.CLIENT_ID}:{self.CLIENT_SECRET}".encode()).decode()
        form = parse_qs(body.decode())
        if (
            method != "POST"
            or headers.get("Authorization") != f"Basic {expected}"
            or form.get("grant_type") != ["client_credentials"]
        ):
            return self._json(400, {"error": "invalid_client"})
        token = f"token-{len(self.tokens) + 1}"
        self.tokens.add(token)
        return self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _route(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        parts = path.removeprefix("/v1/").strip("/").split("/")
        offset, limit = int(query.get("offset", 0)), int(query.get("limit", 20))
        params = {k: v for k, v in query.items() if k not in ("offset", "limit")}
        if parts == ["search"]:
            if not 1 <= limit <= self.SEARCH_LIMIT:
                raise ValueError("Invalid limit")
            items = [self._track_json(t) for t in self._search(query.get("q", ""))]
            return {"tracks": self._page("search", items, offset, limit, params)}
        if not 1 <= limit <= self.PAGE_LIMIT:
            raise ValueError("Invalid limit")
        kind, key, rest = parts[0], parts[1], parts[2:]
        if kind == "playlists" and rest == ["items"]:
            items = [
                {
                    "added_at": "2024-01-01T00:00:00Z",
                    "is_local": False,
                    "track": self._track_json(self.tracks[t]),
                }
                for t in self.playlists[key]
            ]
            return self._page(f"playlists/{key}/items", items, offset, limit, params)
        if kind == "albums" and not rest:
            return self._album_json(self.albums[key], full=True)
        if kind == "albums" and rest == ["tracks"]:
            items = [self._track_json(t, simple=True) for t in self.albums[key].tracks]
            return self._page(f"albums/{key}/tracks", items, offset, limit, params)
        if kind == "artists" and not rest:
            return self._artist_json(self.artists[key], full=True)
        if kind == "artists" and rest == ["albums"]:
            items = [
                self._album_json(a)
                for a in self.albums.values()
                if any(x.id == key for x in a.artists)
            ]
            return self._page(f"artists/{key}/albums", items, offset, limit, params)
        if kind == "tracks" and not rest:
            return self._track_json(self.tracks[key])
        raise KeyError(path)

    def _search(self, q: str) -> list[Track]:
        genres = re.findall(r'genre:"([^"]+)"', q)
        words = re.sub(r'genre:"[^"]+"', " ", q).lower().split()
        found = []
        for track in self.tracks.values():
            text = " ".join([track.name, track.album.name, *[a.name for a in track.artists]])
            artist_genres = {g for a in track.artists for g in a.genres or []}
            if all(g in artist_genres for g in genres) and all(w in text.lower() for w in words):
                found.append(track)
        return found

    @staticmethod
    def _json(status: int, data: Any) -> tuple[int, bytes, str, dict[str, str]]:
        return status, json.dumps(data).encode(), "application/json", {}


# --- the media site ------------------------------------------------------------------------


@dataclass
class Upload:
    title: str
    file: Path
    duration: float


class MediaStandIn(_Server):
    """Search results per query and audio files behind them, served with Range support."""

    def __init__(self) -> None:
        super().__init__()
        self.results: dict[str, list[Upload]] = {}

    @property
    def search_template(self) -> str:
        return f"{self.url}/search.rss?q={{query}}&n={{count}}"

    def add_result(self, query: str, title: str, file: Path, duration: float) -> None:
        self.results.setdefault(query.lower(), []).append(Upload(title, file, duration))

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes
    ) -> tuple[int, bytes, str, dict[str, str]]:
        if path == "/search.rss":
            return 200, self._feed(query.get("q", "")), "application/rss+xml", {}
        if path.startswith("/audio/"):
            return self._audio(path.removeprefix("/audio/"), headers.get("Range"))
        return 404, b"not found", "text/plain", {}

    def _feed(self, q: str) -> bytes:
        items = []
        for n, upload in enumerate(self.results.get(q.lower(), [])):
            url = f"{self.url}/audio/{upload.file.name}"
            size = upload.file.stat().st_size if upload.file.exists() else 0
            items.append(
                f"<item><title>{escape(upload.title)}</title><guid>{upload.file.stem}-{n}</guid>"
                f'<enclosure url="{escape(url)}" type="audio/mpeg" '
                f'length="{size}"/>'
                f"<itunes:duration>{upload.duration:.0f}</itunes:duration></item>"
            )
        return (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
            'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
            f"<title>results for {escape(q)}</title>{''.join(items)}</channel></rss>"
        ).encode()

    def _audio(self, name: str, range_header: str | None) -> tuple[int, bytes, str, dict[str, str]]:
        files = {u.file.name: u.file for uploads in self.results.values() for u in uploads}
        if name not in files or not files[name].exists():
            return 404, b"not found", "text/plain", {}
        data = files[name].read_bytes()
        content_type = {
            ".mp3": "audio/mpeg",
            ".m4a": "audio/mp4",
            ".ogg": "audio/ogg",
            ".opus": "audio/ogg",
            ".flac": "audio/flac",
            ".wav": "audio/wav",
        }.get(files[name].suffix, "application/octet-stream")
        headers = {"Accept-Ranges": "bytes"}
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header or "")
        if match:
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            if start >= len(data):
                return 416, b"", content_type, {"Content-Range": f"bytes */{len(data)}"}
            chunk = data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(chunk) - 1}/{len(data)}"
            return 206, chunk, content_type, headers
        return 200, data, content_type, headers
