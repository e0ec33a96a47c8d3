"""The REST API's router: every resource under /api/v1/."""

from rest_framework.routers import DefaultRouter

from jobs.apis import JobViewSet
from jobs.architecture_apis import ArchitectureViewSet
from jobs.project_apis import ProjectViewSet, TagViewSet
from jobs.registry.apis import RegisteredModelViewSet
from jobs.schedules.apis import ScheduleViewSet
from jobs.sweep_apis import SweepViewSet
from jobs.webhooks.apis import WebhookViewSet
from storage_app.apis import DatasetViewSet
from storage_app.weights_apis import WeightsViewSet


class OptionalSlashRouter(DefaultRouter):
    """Routes that match with and without a trailing slash (a POST is never redirected)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", JobViewSet, basename="job")
router.register("architectures", ArchitectureViewSet, basename="architecture")
router.register("sweeps", SweepViewSet, basename="sweep")
router.register("projects", ProjectViewSet, basename="project")
router.register("tags", TagViewSet, basename="tag")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("models", RegisteredModelViewSet, basename="registered-model")
router.register("webhooks", WebhookViewSet, basename="webhook")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("weights", WeightsViewSet, basename="weights")

urlpatterns = router.urls
