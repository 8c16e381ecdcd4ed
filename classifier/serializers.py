"""The API's representation of tracks."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from classifier.models import TagPolicy, Track


class GenreScoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    parent = serializers.CharField(
        allow_null=True,
        default=None,
        help_text="the genre this style belongs to (a style implies it); null for a genre",
    )
    confidence = serializers.FloatField()


class StyleScoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    score = serializers.FloatField()


class ChunkSerializer(serializers.Serializer):
    start = serializers.FloatField(help_text="seconds from the start of the track")
    probabilities = serializers.DictField(child=serializers.FloatField())


class TrackSerializer(serializers.ModelSerializer):
    genres = GenreScoreSerializer(many=True, read_only=True)
    styles = StyleScoreSerializer(many=True, read_only=True)
    probabilities = serializers.SerializerMethodField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="what decoding the file had to put up with (e.g. junk after the audio)",
    )
    download_url = serializers.SerializerMethodField()
    page_url = serializers.SerializerMethodField()

    class Meta:
        model = Track
        fields = [
            "id",
            "original_name",
            "source",
            "relative_path",
            "missing",
            "title",
            "artist",
            "album",
            "audio_format",
            "size",
            "sha256",
            "status",
            "stage",
            "progress",
            "error",
            "duration",
            "primary_genre",
            "confidence",
            "uncertain",
            "genres",
            "probabilities",
            "styles",
            "warnings",
            "genres_before",
            "genres_after",
            "tag_policy",
            "model_version",
            "created_at",
            "analysed_at",
            "download_url",
            "page_url",
        ]
        read_only_fields = fields

    def get_probabilities(self, track: Track) -> dict[str, float]:
        return dict(track.probabilities)

    def get_download_url(self, track: Track) -> str:
        return self._absolute(reverse("api:track-download", args=[track.pk]))

    def get_page_url(self, track: Track) -> str:
        return self._absolute(reverse("track-detail", args=[track.pk]))

    def _absolute(self, path: str) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class EvidenceSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=["file_tag", "album", "artist", "catalog"], help_text="where the evidence is from"
    )
    genres = serializers.ListField(
        child=serializers.DictField(),
        help_text="[{name, confidence}]: the genres the source names (a file tag: 1, or 1/n "
        "for a spelling of n candidates), or the album's or artist's mean audio probabilities",
    )


class TrackDetailSerializer(TrackSerializer):
    timeline = ChunkSerializer(many=True, read_only=True)
    audio_genres = GenreScoreSerializer(
        many=True, read_only=True, help_text="what the audio alone said, before any evidence"
    )
    evidence = serializers.SerializerMethodField(
        help_text="what each source said beside the audio, as `classify --json` gives it "
        "(file_tag entries add values and unknown spellings; album ones tracks, "
        "far_from_album and distance)"
    )

    class Meta(TrackSerializer.Meta):
        fields = [
            *TrackSerializer.Meta.fields,
            "album_artist",
            "audio_genres",
            "evidence",
            "far_from_album",
            "album_distance",
            "disagreement",
            "review_choice",
            "timeline",
        ]
        read_only_fields = fields

    @extend_schema_field(EvidenceSerializer(many=True))
    def get_evidence(self, track: Track) -> list[dict]:
        return list(track.evidence or [])


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="an audio file (MP3, FLAC, Ogg, Opus, M4A, WAV, AIFF)")
    tag_policy = serializers.ChoiceField(choices=TagPolicy.choices, default=TagPolicy.FILL)


class ReanalyseSerializer(serializers.Serializer):
    queued = serializers.BooleanField(help_text="false while the track is being analysed")
    track = TrackSerializer()
