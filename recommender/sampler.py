"""A ~30-second audio sample of a catalog track, found and cut with yt-dlp's Python API.

yt-dlp searches "artist - title" (RECOMMENDER_SAMPLE_SEARCH, YouTube by default), the
candidate whose title and duration match best is taken, and only a section from its middle
is downloaded (yt-dlp's `download_ranges`, which runs ffmpeg) and converted to MP3.

FFmpeg is the system's where one is on PATH, else the imageio-ffmpeg wheel's binary.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import shutil
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from recommender import conf

log = logging.getLogger(__name__)

# Words that mark another version of a song; a candidate with one the Spotify title lacks
# is probably not the recording we want.
_OTHER_VERSION = (
    "live",
    "cover",
    "remix",
    "karaoke",
    "instrumental",
    "sped up",
    "slowed",
    "nightcore",
    "8d",
    "reaction",
    "lesson",
    "tutorial",
    "acoustic",
    "reverb",
)
# Decorations uploaders add to titles, dropped before comparing.
_NOISE = re.compile(
    r"[\(\[][^\)\]]*(official|audio|video|lyrics?|visuali[sz]er|hd|hq|4k|"
    r"remaster(ed)?|music video|mv)[^\)\]]*[\)\]]",
    re.IGNORECASE,
)
# Substrings of an error message that mean "the network failed", worth a retry later.
_TRANSIENT = (
    "timed out",
    "timeout",
    "temporary failure",
    "connection reset",
    "connection refused",
    "connection aborted",
    "remote end closed",
    "http error 5",
    "http error 429",
    "too many requests",
    "network is unreachable",
    "name or service not known",
    "incomplete read",
    "errno 104",
    "errno 111",
)


class SampleError(Exception):
    """No usable sample: nothing matches, the video is unavailable, the audio is unreadable."""


class SampleNetworkError(SampleError):
    """A network failure on the way: worth retrying later."""


@dataclass
class Candidate:
    url: str
    title: str
    duration: float | None
    uploader: str = ""
    score: float = 0.0


@dataclass
class Sample:
    path: Path
    candidate: Candidate
    start: float
    seconds: float


# --- ffmpeg -----------------------------------------------------------------------------


@functools.cache
def ffmpeg_exe() -> str:
    """RECOMMENDER_FFMPEG, else ffmpeg on PATH, else the one inside the imageio-ffmpeg wheel."""
    explicit = conf.ffmpeg_location()
    if explicit:
        return explicit
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _use_ffmpeg(path: str) -> None:
    # yt-dlp decides whether it may download a section (FFmpegFD.available) from a context
    # variable that only its command line sets; the `ffmpeg_location` param covers the rest.
    # Without this a section download says "ffmpeg is not installed" (yt-dlp issue #2191).
    from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

    FFmpegPostProcessor._ffmpeg_location.set(path)


# --- matching ---------------------------------------------------------------------------


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = _NOISE.sub(" ", text.lower())
    text = re.sub(r"\b(feat|ft)\.?\s.*$", " ", text)  # featured artists vary between sites
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def title_similarity(candidate: Candidate, artist: str, title: str) -> float:
    wanted = normalise(f"{artist} {title}")
    seen = normalise(candidate.title)
    if normalise(artist) not in seen and candidate.uploader:
        # YouTube's "Artist - Topic" channels title uploads with the song alone.
        seen = normalise(f"{candidate.uploader.removesuffix(' - Topic')} {candidate.title}")
    ratio = difflib.SequenceMatcher(None, wanted, seen).ratio()
    # Every word of the title present counts for as much as the character-level ratio.
    words = normalise(title).split()
    coverage = sum(w in seen.split() for w in words) / len(words) if words else 0.0
    return 0.5 * ratio + 0.5 * coverage


def duration_closeness(candidate: float | None, target: float | None) -> float:
    """1 for the same length, falling to 0 at 25% (at least 15 s) apart; 0.5 if unknown."""
    if not candidate or not target:
        return 0.5
    tolerance = max(15.0, 0.25 * target)
    return max(0.0, 1.0 - abs(candidate - target) / tolerance)


def other_version_penalty(candidate: Candidate, title: str) -> float:
    seen, wanted = normalise(candidate.title), normalise(title)
    extra = [
        w
        for w in _OTHER_VERSION
        if re.search(rf"\b{w}\b", seen) and not re.search(rf"\b{w}\b", wanted)
    ]
    return min(0.6, 0.3 * len(extra))


def score(candidate: Candidate, artist: str, title: str, duration: float | None) -> float:
    value = (
        0.6 * title_similarity(candidate, artist, title)
        + 0.4 * duration_closeness(candidate.duration, duration)
        - other_version_penalty(candidate, title)
    )
    return round(max(0.0, min(1.0, value)), 4)


def best_candidate(
    candidates: list[Candidate], artist: str, title: str, duration: float | None, min_match: float
) -> Candidate:
    if not candidates:
        raise SampleError(f"no search results for “{artist} - {title}”")
    for c in candidates:
        c.score = score(c, artist, title, duration)
    best = max(candidates, key=lambda c: c.score)
    if best.score < min_match:
        raise SampleError(
            f"no result matches “{artist} - {title}” well enough (best: "
            f"“{best.title}”, score {best.score:.2f} < {min_match:.2f})"
        )
    return best


# --- yt-dlp -----------------------------------------------------------------------------

_EDITION = re.compile(
    r"\s+-\s+[^-]*\b(remaster(ed)?|version|mono|stereo|edit|mix|"
    r"single|bonus|deluxe|anniversary)\b.*$",
    re.IGNORECASE,
)


def search_title(title: str) -> str:
    """Spotify's title without an edition suffix ("Song - 2011 Remaster" -> "Song")."""
    return _EDITION.sub("", title).strip() or title


def search_url(artist: str, title: str, count: int) -> str:
    query = f"{artist} - {title}"
    template = conf.sample_search()
    if template.startswith(("http://", "https://")):
        query = quote_plus(query)
    return template.format(query=query, count=count)


def _base_options() -> dict[str, Any]:
    options: dict[str, Any] = {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "cachedir": False,
        "socket_timeout": 30,
        "retries": 3,
        "fragment_retries": 3,
        "logger": _YtdlpLogger(),
        "js_runtimes": {name: {} for name in conf.ytdlp_js_runtimes()},
    }
    if conf.ytdlp_remote_components():
        options["remote_components"] = conf.ytdlp_remote_components()
    if conf.ytdlp_cookies():
        options["cookiefile"] = conf.ytdlp_cookies()
    return options


def search(artist: str, title: str, count: int | None = None) -> list[Candidate]:
    """The first `count` search results, read flat: titles and durations, nothing downloaded."""
    import yt_dlp

    count = count or conf.sample_candidates()
    options = {
        **_base_options(),
        "extract_flat": "in_playlist",
        "skip_download": True,
        "playlistend": count,
        "noplaylist": False,
    }
    with yt_dlp.YoutubeDL(options) as ydl:
        info = _run(lambda: ydl.extract_info(search_url(artist, title, count), download=False))
    entries = [e for e in (info or {}).get("entries") or [] if e and e.get("url")]
    return [
        Candidate(
            url=e.get("webpage_url") or e["url"],
            title=e.get("title") or "",
            duration=e.get("duration"),
            uploader=e.get("uploader") or e.get("channel") or "",
        )
        for e in entries[:count]
    ]


def middle_section(duration: float | None, seconds: float) -> tuple[float, float]:
    """The `seconds`-long stretch centred on the middle of a track of `duration`."""
    if not duration or duration <= seconds:
        return 0.0, duration or seconds
    start = round(duration / 2 - seconds / 2, 2)
    return start, start + seconds


def download_section(candidate: Candidate, directory: Path, start: float, end: float) -> Path:
    """Download only [start, end] of the candidate's audio, as MP3 in `directory`."""
    import yt_dlp
    from yt_dlp.utils import download_range_func

    ffmpeg = ffmpeg_exe()
    _use_ffmpeg(ffmpeg)
    options = {
        **_base_options(),
        "format": "bestaudio/best",
        "outtmpl": {"default": str(directory / "sample.%(ext)s")},
        "download_ranges": download_range_func(None, [(start, end)]),
        "ffmpeg_location": ffmpeg,
        "overwrites": True,
        "postprocessors": [
            {"key": "FFmpegExtractAudio", "preferredcodec": "mp3", "preferredquality": "5"}
        ],
    }
    with yt_dlp.YoutubeDL(options) as ydl:
        info = _run(lambda: ydl.extract_info(candidate.url, download=True))
    downloads = (info or {}).get("requested_downloads") or []
    paths = [Path(d["filepath"]) for d in downloads if d.get("filepath")]
    path = next((p for p in paths if p.exists()), None)
    if path is None:
        raise SampleError(f"yt-dlp reported no file for {candidate.url}")
    return path


def fetch_sample(artist: str, title: str, duration: float | None, directory: Path) -> Sample:
    """Search, pick and cut: the whole sampling step, into `directory`."""
    seconds = conf.sample_seconds()
    best = best_candidate(search(artist, title), artist, title, duration, conf.sample_min_match())
    start, end = middle_section(best.duration or duration, seconds)
    path = download_section(best, directory, start, end)
    return Sample(path=path, candidate=best, start=start, seconds=end - start)


def _run(action: Any) -> Any:
    """Run a yt-dlp call, its errors sorted into network (retry) and final ones."""
    from yt_dlp.utils import DownloadError, ExtractorError

    try:
        return action()
    except (DownloadError, ExtractorError) as exc:
        message = _clean(str(exc))
        if is_transient(exc):
            raise SampleNetworkError(message) from exc
        raise SampleError(message) from exc
    except OSError as exc:  # socket errors that escape yt-dlp's own handling
        raise SampleNetworkError(str(exc)) from exc


def is_transient(exc: BaseException) -> bool:
    """Whether a yt-dlp error is the network's (retry later) rather than the video's."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError

    for cause in _causes(exc):
        if isinstance(cause, HTTPError):
            return cause.status == 429 or cause.status >= 500
        if isinstance(cause, (TransportError, ConnectionError, TimeoutError)):
            return True
    text = str(exc).lower()
    if re.search(r"http error (?!429)4\d\d", text):
        return False
    return any(marker in text for marker in _TRANSIENT)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: yt-dlp keeps originals in exc_info and .cause."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen) or len(seen) > 20:
            continue
        seen.append(item)
        info = getattr(item, "exc_info", None)
        todo += [
            info[1] if info and len(info) > 1 else None,
            getattr(item, "cause", None),
            item.__cause__,
            item.__context__,
        ]
    return seen


def _clean(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)  # yt-dlp colours its errors
    return message.removeprefix("ERROR: ").strip()[:1000]


class _YtdlpLogger:
    """yt-dlp's messages into our log, its chatter at debug level."""

    def debug(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        log.debug("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        log.info("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        log.warning("yt-dlp: %s", _clean(message))
