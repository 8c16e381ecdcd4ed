"""Server-side pictures of a track: its spectrogram and its genre timeline, as cached PNGs,
and how the evidence moved its verdict, as inline SVG.

Drawn with matplotlib's object API on the Agg canvas (no pyplot: no global state, safe in
threads). Each PNG is cached under MEDIA_ROOT/cache and served only through views that
check the track's owner.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from classifier.engine.errors import AudioError
from classifier.engine.files import atomic_write
from classifier.models import Status, Track
from classifier.services import taxonomy
from classifier.services.taxonomy import genre_colour

# Long tracks: the spectrogram shows their first ten minutes.
SPECTROGRAM_SECONDS = 600
# A genre under this probability in every chunk is left out of the timeline and its legend.
TIMELINE_MIN = 0.01
_INK = "#334155"

log = logging.getLogger(__name__)


class PictureUnavailable(Exception):
    """A picture that cannot be drawn for this track; the message says why, for a person."""


def cache_dir(track: Track) -> Path:
    return Path(settings.MEDIA_ROOT) / "cache" / str(track.owner_id) / str(track.pk)


def spectrogram_png(track: Track) -> Path:
    """The track's log-mel spectrogram; the audio never changes, so the hash names it.

    Drawn only once the analysis is done: the worker has then decoded the file, so decoding
    it here cannot crash the web process on a file that crashes the decoder. Raises
    PictureUnavailable, with the reason, before that, for a failed track, or where the file
    does not decode.
    """
    if track.status == Status.FAILED:
        raise PictureUnavailable(f"No spectrogram: {track.error or 'the analysis failed.'}")
    if track.status != Status.DONE:
        raise PictureUnavailable("The spectrogram is drawn once the analysis is done.")
    path = cache_dir(track) / f"spectrogram-{track.sha256[:16]}.png"
    try:
        return _cached(path, lambda: _draw_spectrogram(track.audio_path))
    except AudioError as exc:
        raise PictureUnavailable(f"No spectrogram: {exc}") from exc
    except Exception as exc:
        log.exception("the spectrogram of track %s could not be drawn", track.pk)
        raise PictureUnavailable(
            "No spectrogram: it could not be drawn because of an internal error."
        ) from exc


def placeholder_png(message: str) -> bytes:
    """A picture the size of a spectrogram that states `message` instead."""
    figure, axes = _figure(10, 2.8)
    axes.set_axis_off()
    axes.text(
        0.5,
        0.5,
        textwrap.fill(message, 100),
        ha="center",
        va="center",
        color=_INK,
        fontsize=9,
        transform=axes.transAxes,
    )
    return _png(figure)


def timeline_png(track: Track) -> Path:
    """Each chunk's genre probabilities, stacked; redrawn after each analysis."""
    stamp = int(track.analysed_at.timestamp()) if track.analysed_at else 0
    path = cache_dir(track) / f"timeline-{stamp}.png"
    return _cached(path, lambda: _draw_timeline(track.timeline))


def _cached(path: Path, draw: Callable[[], bytes]) -> Path:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # A concurrent request never reads half a PNG.
        with atomic_write(path, mode=0o640) as temp:
            temp.write_bytes(draw())
    return path


def _figure(width: float, height: float) -> tuple[object, object]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#cbd5e1")
    axes.tick_params(colors=_INK, labelsize=8)
    return figure, axes


def _png(figure: object) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight", facecolor="white")
    return buffer.getvalue()


def _first_samples(path: str, seconds: int) -> np.ndarray:
    from classifier.engine.audio import iter_decode
    from classifier.engine.config import AUDIO

    wanted = seconds * AUDIO.sample_rate
    blocks, total = [], 0
    for block in iter_decode(path):
        blocks.append(np.asarray(block, dtype=np.float32))
        total += len(blocks[-1])
        if total >= wanted:
            break
    return np.concatenate(blocks)[:wanted] if blocks else np.zeros(0, np.float32)


def _draw_spectrogram(path: str) -> bytes:
    from classifier.engine.config import AUDIO
    from classifier.engine.features import log_mel

    samples = _first_samples(path, SPECTROGRAM_SECONDS)
    mel = np.asarray(log_mel(samples))
    seconds = len(samples) / AUDIO.sample_rate
    figure, axes = _figure(10, 2.8)
    axes.imshow(
        mel.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(0, seconds, 0, mel.shape[1]),
    )
    axes.set_xlabel("seconds", color=_INK, fontsize=8)
    axes.set_ylabel("mel band", color=_INK, fontsize=8)
    return _png(figure)


def _draw_timeline(timeline: list[dict]) -> bytes:
    figure, axes = _figure(10, 3.0)
    if not timeline:
        axes.text(
            0.5,
            0.5,
            "not analysed yet",
            ha="center",
            va="center",
            color=_INK,
            transform=axes.transAxes,
        )
        return _png(figure)
    starts = np.array([chunk["start"] for chunk in timeline])
    names = taxonomy.current()
    genres = _timeline_genres(timeline, names)
    width = _bar_width(starts)
    bottom = np.zeros(len(starts))
    for genre in genres:
        values = np.array([chunk["probabilities"].get(genre, 0.0) for chunk in timeline])
        axes.bar(
            starts,
            values,
            width=width,
            bottom=bottom,
            align="edge",
            color=genre_colour(genre),
            label=names.label(genre),
            linewidth=0,
        )
        bottom += values
    axes.set_ylim(0, 1)
    axes.set_xlim(starts.min(), starts.max() + width)
    axes.set_xlabel("seconds (chunk start)", color=_INK, fontsize=8)
    axes.set_ylabel("probability", color=_INK, fontsize=8)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=8)
    return _png(figure)


def _timeline_genres(timeline: list[dict], names: taxonomy.Taxonomy) -> list[str]:
    """The genres visible somewhere in the timeline (1 % or more), in label order."""
    peak: dict[str, float] = {}
    for chunk in timeline:
        for genre, p in chunk["probabilities"].items():
            peak[genre] = max(peak.get(genre, 0.0), p)
    shown = {genre for genre, p in peak.items() if p >= TIMELINE_MIN}
    return names.ordered(shown)


def _bar_width(starts: np.ndarray) -> float:
    from classifier.engine.config import AUDIO

    if len(starts) < 2:
        return AUDIO.patch_seconds
    return float(min(AUDIO.patch_seconds, np.min(np.diff(np.sort(starts)))) * 0.92)


# ---------------------------------------------------------------- evidence, inline SVG

# The stages of a fused verdict, in the order the rule adds them (services/evidence.steps).
EVIDENCE_STAGES = (
    ("audio", "Audio"),
    ("file_tag", "+ file tag"),
    ("album", "+ album"),
    ("artist", "+ artist"),
    ("final", "Result"),
)
_ROW, _GAP, _LABEL_W, _BAR_W = 14, 10, 170, 320


def evidence_svg(track: Track) -> SafeString:
    """How each kind of evidence moved the top genres' probabilities: for each genre, one
    bar per stage (the audio alone, then the file's tag, the album and the artist added, the
    result). Inline SVG, so it needs no request of its own; empty before the analysis."""
    rows = (track.fusion or {}).get("steps") or []
    if not rows:
        return mark_safe("")
    names = taxonomy.current()
    parts: list[str] = []
    y = 0
    for row in rows:
        genre = str(row.get("genre", ""))
        colour = escape(genre_colour(genre))
        parts.append(
            f'<text x="0" y="{y + 11}" class="ev-genre" font-weight="600">'
            f"{escape(names.label(genre))}</text>"
        )
        y += _ROW
        for key, label in EVIDENCE_STAGES:
            if key not in row:
                continue
            p = min(max(float(row[key]), 0.0), 1.0)
            opacity = "1" if key == "final" else "0.55"
            parts.append(
                f'<text x="12" y="{y + 10}" font-size="11">{label}</text>'
                f'<rect x="{_LABEL_W}" y="{y + 2}" width="{_BAR_W}" height="9" fill="#e2e8f0"/>'
                f'<rect x="{_LABEL_W}" y="{y + 2}" width="{p * _BAR_W:.1f}" height="9" '
                f'fill="{colour}" fill-opacity="{opacity}"><title>{label}: {p:.0%}</title></rect>'
                f'<text x="{_LABEL_W + _BAR_W + 6}" y="{y + 10}" font-size="11">{p:.0%}</text>'
            )
            y += _ROW
        y += _GAP
    width = _LABEL_W + _BAR_W + 48
    return mark_safe(  # noqa: S308 - every text in it is escaped above
        f'<svg class="evidence-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {width} {y}" width="100%" style="max-width:{width}px" '
        f'font-family="sans-serif" fill="{_INK}" aria-label="How the evidence moved the '
        f"top genres' probabilities\">{''.join(parts)}</svg>"
    )
