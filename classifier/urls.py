"""The library's pages and the REST API's routes."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from classifier import api, tag_views, views

router = DefaultRouter()
router.register("tracks", api.TrackViewSet, basename="track")

api_urlpatterns = [path("", include(router.urls))]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("upload/", views.upload, name="upload"),
    path("folders/", views.library_folders, name="library-folders"),
    path("folders/<int:pk>/scan/", views.folder_scan, name="folder-scan"),
    path("folders/<int:pk>/status/", views.folder_status, name="folder-status"),
    path("library/bulk/", views.bulk, name="bulk"),
    path("library/reanalyse-outdated/", views.reanalyse_outdated, name="reanalyse-outdated"),
    path("tracks/<int:pk>/", views.track_detail, name="track-detail"),
    path("tracks/<int:pk>/status/", views.track_status, name="track-status"),
    path("tracks/<int:pk>/download/", views.track_download, name="track-download"),
    path("tracks/<int:pk>/spectrogram.png", views.track_spectrogram, name="track-spectrogram"),
    path("tracks/<int:pk>/timeline.png", views.track_timeline, name="track-timeline"),
    path("tracks/<int:pk>/reanalyse/", views.track_reanalyse, name="track-reanalyse"),
    path("tracks/<int:pk>/tags/", views.track_retag, name="track-retag"),
    path("tracks/<int:pk>/delete/", views.track_delete, name="track-delete"),
    path("tracks/<int:pk>/review/", views.track_review, name="track-review"),
    path("tags/", tag_views.changes, name="tag-changes"),
    path("tags/preview/", tag_views.preview, name="tag-preview"),
    path("tags/apply/", tag_views.apply, name="tag-apply"),
    path("tags/undo-since/", tag_views.undo_since, name="tag-undo-since"),
    path("tags/batches/<int:pk>/", tag_views.batch_detail, name="tag-batch"),
    path("tags/batches/<int:pk>/progress/", tag_views.batch_progress, name="tag-batch-progress"),
    path("tags/batches/<int:pk>/undo/", tag_views.undo_batch, name="tag-undo-batch"),
    path("tags/writes/<int:pk>/undo/", tag_views.undo_write, name="tag-undo-write"),
]
