from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from classifier.urls import api_urlpatterns
from genreweb import health, logins
from genreweb.accounts import views as accounts

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/signup/<str:token>/", accounts.signup_invited, name="signup-invited"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("health/", health.health, name="health"),
    path("api/", include((api_urlpatterns, "api"))),
    path("api/token/", logins.ObtainToken.as_view(), name="api-token"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("recommender.urls")),
    path("", include("classifier.urls")),
]
