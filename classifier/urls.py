"""The library's pages and the REST API's routes."""

from __future__ import annotations

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from classifier import api, views

router = DefaultRouter()
router.register("tracks", api.TrackViewSet, basename="track")

api_urlpatterns = [path("", include(router.urls))]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("upload/", views.upload, name="upload"),
    path("folders/", views.library_folders, name="library-folders"),
    path("folders/<int:pk>/scan/", views.folder_scan, name="folder-scan"),
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
]
