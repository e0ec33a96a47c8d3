from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring_app.views import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("tensorfleet_site.api_urls")),
    path("api/v1/", include("monitoring_app.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    # Prometheus scrapes here (a bearer token guards it when METRICS_TOKEN is set).
    re_path(r"^metrics/?$", metrics, name="metrics"),
]
