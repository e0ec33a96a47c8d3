"""Under /dashboard/: the web dashboard's pages (views.py and the *_pages.py beside this file)."""

from django.urls import path

from tensorfleet_site.dashboard import data_pages, project_pages, registry_pages, sweep_pages, views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("jobs/", views.job_list, name="jobs"),
    path("jobs/<uuid:job_id>/", views.job_detail, name="job"),
    path("jobs/<uuid:job_id>/epochs", views.job_epochs, name="job-epochs"),
    path("jobs/<uuid:job_id>/cancel", views.job_cancel, name="job-cancel"),
    path("jobs/<uuid:job_id>/resume", views.job_resume, name="job-resume"),
    path("submit/", views.job_submit, name="submit"),
    path("compare", views.compare, name="compare"),
    path("compare/", views.compare),
    path("sweeps/", sweep_pages.sweep_list, name="sweeps"),
    path("sweeps/<uuid:sweep_id>/", sweep_pages.sweep_detail, name="sweep"),
    path("sweeps/<uuid:sweep_id>/cancel", sweep_pages.sweep_cancel, name="sweep-cancel"),
    path("datasets/", data_pages.dataset_list, name="datasets"),
    path("datasets/<uuid:dataset_id>/delete", data_pages.dataset_delete, name="dataset-delete"),
    path("projects/", project_pages.project_list, name="projects"),
    path("projects/<uuid:project_id>/", project_pages.project_detail, name="project"),
    path("models/", registry_pages.model_list, name="models"),
    path("models/<str:name>/", registry_pages.model_detail, name="model"),
]
