"""Under /dashboard/: the web dashboard's pages (views.py beside this file)."""

from django.urls import path

from tensorfleet_site.dashboard import views

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
