"""Under /dashboard/: the web dashboard's pages (monitoring_app/dashboard_views.py)."""

from django.urls import path

from monitoring_app import dashboard_views as views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job"),
    path("jobs/<uuid:job_id>/cancel", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:job_id>/resume", views.job_resume, name="job-resume"),
    path("submit/", views.job_submit, name="submit"),
    path("compare", views.compare, name="compare"),
    path("compare/", views.compare),
]
