"""{% songs_like_this track %}: the track page's "songs like this" block.

{% load songs_like_this %}
{% songs_like_this track %}
"""

from __future__ import annotations

from typing import Any

from django import template

from recommender.services.similar import similar_catalog, similar_in_library

register = template.Library()


@register.inclusion_tag("recommender/_songs_like_this.html")
def songs_like_this(track: Any, k: int = 10) -> dict[str, Any]:
    return {
        "track": track,
        "catalog": similar_catalog(track, k),
        "library": similar_in_library(track, k),
    }
