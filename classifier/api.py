"""The REST API: upload, list, detail, download, re-analyse and delete one's own tracks.

Session or token authentication; the queryset holds only the user's tracks, so another
user's track answers 404 like one that does not exist.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser
from rest_framework.request import Request
from rest_framework.response import Response

from classifier.forms import LibraryFilterForm
from classifier.models import OutsideFolder, Track
from classifier.serializers import (
    ReanalyseSerializer,
    TrackDetailSerializer,
    TrackSerializer,
    UploadSerializer,
)
from classifier.services import actions, downloads, evidence
from classifier.services import intake as intake_service
from classifier.services.library import filter_tracks
from classifier.tasks import queue_analyses, queue_refusing
from genreweb.uploads import MultiPartParser

LIST_PARAMETERS = [
    OpenApiParameter("q", str, description="words to find in title, artist, album, file name"),
    OpenApiParameter("genre", str, description="primary genre (e.g. jazz), or 'uncertain'"),
    OpenApiParameter("status", str, enum=["pending", "processing", "done", "failed"]),
    OpenApiParameter(
        "sort",
        str,
        description="added, title, artist, album, duration, genre "
        "or confidence; a leading '-' reverses",
    ),
    OpenApiParameter(
        "review",
        str,
        enum=["disagrees", "uncertain"],
        description="tracks still to review: the audio disagrees with the file's genre tag "
        "(most strongly first), or the verdict is uncertain (least confident first)",
    ),
]


class TrackViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = TrackSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self) -> QuerySet[Track]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Track.objects.none()
        return Track.objects.filter(owner=self.request.user)

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        if self.action == "retrieve":
            return TrackDetailSerializer
        if self.action == "create":
            return UploadSerializer
        return TrackSerializer

    def filter_queryset(self, queryset: QuerySet[Track]) -> QuerySet[Track]:
        if self.action != "list":
            return queryset
        form = LibraryFilterForm(self.request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        return filter_tracks(queryset, **form.filters())

    @extend_schema(parameters=LIST_PARAMETERS)
    def list(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: TrackSerializer,
            200: OpenApiResponse(TrackSerializer, description="already in the library"),
            400: OpenApiResponse(description="not audio, or empty"),
            413: OpenApiResponse(description="over the size limit"),
        },
        description="Upload one audio file; it is queued for analysis. The same content "
        "uploaded again returns the existing track with status 200.",
    )
    def create(self, request: Request) -> Response:
        try:
            intake_service.check_request_size(request.META.get("CONTENT_LENGTH"))
            upload = UploadSerializer(data=request.data)
            upload.is_valid(raise_exception=True)
            intake = intake_service.accept_upload(
                request.user, upload.validated_data["file"], upload.validated_data["tag_policy"]
            )
            queue_analyses(intake.to_analyse)
        except intake_service.UploadRefused as exc:
            return Response({"error": str(exc)}, status=exc.status)
        data = TrackSerializer(intake.track, context=self.get_serializer_context()).data
        return Response(
            data, status=status.HTTP_201_CREATED if intake.created else status.HTTP_200_OK
        )

    @extend_schema(
        responses={(200, "audio/*"): OpenApiTypes.BINARY},
        description="The stored file, with the genre tags Genreweb wrote, under "
        "the audio type and extension of what it holds.",
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: str | None = None) -> FileResponse:
        try:
            return downloads.file_response(self.get_object())
        except (OSError, OutsideFolder) as exc:  # a folder file gone, or no longer inside
            raise Http404("The file is not there any more.") from exc

    @extend_schema(
        request=None,
        responses={202: ReanalyseSerializer, 409: ReanalyseSerializer},
        description="Queue the track for a new analysis (409 while a live worker "
        "analyses it; a track whose worker died is taken back).",
    )
    @action(detail=True, methods=["post"])
    def reanalyse(self, request: Request, pk: str | None = None) -> Response:
        track = self.get_object()
        queued_ids = actions.reanalyse(Track.objects.filter(pk=track.pk))
        queue_analyses(queued_ids)
        queued = bool(queued_ids)
        track.refresh_from_db()
        body = {
            "queued": queued,
            "track": TrackSerializer(track, context=self.get_serializer_context()).data,
        }
        return Response(
            body, status=status.HTTP_202_ACCEPTED if queued else status.HTTP_409_CONFLICT
        )

    def perform_destroy(self, instance: Track) -> None:
        doomed = Track.objects.filter(pk=instance.pk)
        mates = evidence.mates_of(doomed)  # fused again without it
        actions.delete_tracks(doomed)
        queue_refusing(mates)
