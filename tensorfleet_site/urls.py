from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring_app.views import metrics
from tensorfleet_site.dashboard.views import OverviewJsonView

urlpatterns = [
    path("", RedirectView.as_view(url="/dashboard/", permanent=False)),
    path("dashboard/", include("tensorfleet_site.dashboard.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="dashboard/login.html"), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="/accounts/login/"), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("tensorfleet_site.api_urls")),
    path("api/v1/", include("monitoring_app.urls")),
    # The dashboard's live overview (session auth), beside the API it polls.
    re_path(r"^api/v1/dashboard/overview/?$", OverviewJsonView.as_view(), name="dashboard-overview"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api-auth/", include("rest_framework.urls")),
    # Prometheus scrapes here (a bearer token guards it when METRICS_TOKEN is set).
    re_path(r"^metrics/?$", metrics, name="metrics"),
]
