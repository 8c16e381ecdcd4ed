"""The JSON shape of "songs like this" (GET /api/tracks/<id>/similar/)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from rest_framework import serializers

from recommender.services.similar import Suggestion, Suggestions


class CatalogSuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="item.pk")
    spotify_id = serializers.CharField(source="item.spotify_id")
    title = serializers.CharField(source="item.title")
    artists = serializers.ListField(child=serializers.CharField(), source="item.artists")
    artist = serializers.CharField(source="item.artist_line")
    album = serializers.CharField(source="item.album")
    release_year = serializers.IntegerField(source="item.release_year", allow_null=True)
    cover_url = serializers.CharField(source="item.cover_url")
    spotify_url = serializers.CharField(source="item.spotify_url")
    sample_url = serializers.SerializerMethodField()
    genre = serializers.CharField()
    shared_genre = serializers.BooleanField()
    similarity = serializers.FloatField()
    reason = serializers.CharField()

    def get_sample_url(self, suggestion: Suggestion) -> str | None:
        if not suggestion.item.sample:
            return None
        url = reverse("recommender:catalog-sample", args=[suggestion.item.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


class LibrarySuggestionSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="item.pk")
    title = serializers.CharField(source="item.display_title")
    artist = serializers.CharField(source="item.artist")
    genre = serializers.CharField()
    shared_genre = serializers.BooleanField()
    similarity = serializers.FloatField()
    reason = serializers.CharField()


def suggestions_payload(
    suggestions: Suggestions, serializer: type[serializers.Serializer], context: dict[str, Any]
) -> dict[str, Any]:
    return {
        "results": serializer(suggestions.items, many=True, context=context).data,
        "message": suggestions.message,
    }


# --- the response's shape, for the OpenAPI schema ------------------------------------------


class _TrackRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField()
    primary_genre = serializers.CharField(allow_null=True)


class _CatalogListSerializer(serializers.Serializer):
    results = CatalogSuggestionSerializer(many=True)
    message = serializers.CharField(help_text="why the list is empty, when it is")


class _LibraryListSerializer(serializers.Serializer):
    results = LibrarySuggestionSerializer(many=True)
    message = serializers.CharField(help_text="why the list is empty, when it is")


class SimilarResponseSerializer(serializers.Serializer):
    track = _TrackRefSerializer()
    genre = serializers.CharField(allow_null=True, help_text="the primary genre matched")
    catalog = _CatalogListSerializer()
    library = _LibraryListSerializer()
