"""Under /api/v1/: health and readiness (no authentication: probes call them), the overview."""

from django.urls import re_path

from monitoring_app import views

urlpatterns = [
    re_path(r"^health/?$", views.health, name="health"),
    re_path(r"^ready/?$", views.ready, name="ready"),
    re_path(r"^overview/?$", views.OverviewView.as_view(), name="overview"),
]
