"""Filters for the library pages: genre colours and names, percentages, durations."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from classifier.services import taxonomy

register = template.Library()


@register.filter
def genre_colour(genre: str) -> str:
    return taxonomy.genre_colour(genre or taxonomy.UNCERTAIN)


@register.filter
def genre_label(genre: str) -> str:
    if not genre:
        return ""
    return taxonomy.current().label(genre)


@register.filter
def percent(value: float | None) -> str:
    """0.873 -> "87%" (blank for None)."""
    return "" if value is None else f"{float(value) * 100:.0f}%"


@register.filter
def bar_width(value: float | None, scale: float = 1.0) -> str:
    """A CSS width for a bar: value / scale as a percentage, at most 100%."""
    if value is None or not scale:
        return "0%"
    return f"{min(100.0, max(0.0, float(value) / float(scale) * 100)):.1f}%"


@register.filter
def duration(seconds: float | None) -> str:
    """203.4 -> "3:23"; 3725 -> "1:02:05"."""
    if seconds is None:
        return "–"
    total = int(round(float(seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@register.simple_tag(takes_context=True)
def sort_link(context: template.Context, key: str, label: str) -> str:
    """A column heading that sorts by `key`, reversing the order when it already does."""
    query = context["request"].GET.copy()
    current = query.get("sort", "added")
    query["sort"] = f"-{key}" if current == key else key
    query.pop("page", None)
    arrow = " ↑" if current == key else " ↓" if current == f"-{key}" else ""
    return format_html('<a class="sort" href="?{}">{}{}</a>', query.urlencode(), label, arrow)
