"""The "songs like this" API and the catalog samples' player source."""

from __future__ import annotations

import mimetypes

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommender.models import CatalogTrack, Status
from recommender.serializers import (
    CatalogSuggestionSerializer,
    LibrarySuggestionSerializer,
    SimilarResponseSerializer,
    suggestions_payload,
)
from recommender.services.similar import similar_catalog, similar_in_library

MAX_K = 50


class SimilarTracksView(APIView):
    """GET /api/tracks/<id>/similar/?k=10: catalog and library tracks like one of yours."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[OpenApiParameter("k", int, description="how many of each (1-50, default 10)")],
        responses={200: SimilarResponseSerializer},
        description="The top k catalog tracks of the track's primary genre and the top k of "
        "your own tracks, ranked by cosine similarity of the engine's embeddings. "
        "404 for a track that is not yours.",
    )
    def get(self, request: Request, pk: int) -> Response:
        from classifier.models import Track

        track = get_object_or_404(Track, pk=pk, owner=request.user)
        try:
            k = max(1, min(MAX_K, int(request.query_params.get("k", 10))))
        except ValueError:
            return Response({"detail": "k must be a whole number"}, status=400)
        context = {"request": request}
        catalog = similar_catalog(track, k)
        return Response(
            {
                "track": {
                    "id": track.pk,
                    "title": track.display_title,
                    "primary_genre": track.primary_genre or None,
                },
                "genre": catalog.genre or None,
                "catalog": suggestions_payload(catalog, CatalogSuggestionSerializer, context),
                "library": suggestions_payload(
                    similar_in_library(track, k), LibrarySuggestionSerializer, context
                ),
            }
        )


@login_required
@require_GET
def catalog_sample(request: HttpRequest, pk: int) -> FileResponse:
    """A catalog track's ~30-second sample, for the <audio> players (signed-in users only)."""
    track = get_object_or_404(CatalogTrack, pk=pk)
    if not track.sample or (track.status == Status.EXCLUDED and not request.user.is_staff):
        raise Http404("no sample")
    try:
        handle = track.sample.open("rb")
    except FileNotFoundError:
        raise Http404("no sample") from None
    content_type = mimetypes.guess_type(track.sample.name)[0] or "audio/mpeg"
    return FileResponse(handle, content_type=content_type)
