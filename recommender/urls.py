"""The recommender's routes; genreweb/urls.py includes them at the site root:

path("", include("recommender.urls")),
"""

from __future__ import annotations

from django.urls import path

from recommender import views

app_name = "recommender"

urlpatterns = [
    path("api/tracks/<int:pk>/similar/", views.SimilarTracksView.as_view(), name="similar"),
    path("catalog/<int:pk>/sample/", views.catalog_sample, name="catalog-sample"),
]
